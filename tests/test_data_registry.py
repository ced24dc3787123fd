"""The benchmark registry."""

from __future__ import annotations

import pytest

from execrl.data import BENCHMARKS, DataError, apps, get_benchmark, humaneval, mbpp


def test_registry_maps_names_to_modules() -> None:
    assert {"humaneval": humaneval, "mbpp": mbpp, "apps": apps} == BENCHMARKS
    assert get_benchmark("HumanEval") is humaneval


def test_every_benchmark_has_the_same_shape() -> None:
    for name, module in BENCHMARKS.items():
        assert name == module.NAME
        assert callable(module.load) and callable(module.make_job)


def test_unknown_benchmark_lists_valid_names() -> None:
    with pytest.raises(
        DataError, match=r"^unknown benchmark 'humaneval\+'; valid names: apps, humaneval, mbpp$"
    ):
        get_benchmark("humaneval+")
