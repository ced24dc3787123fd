"""The benchmark registry."""

from __future__ import annotations

import pytest

from execrl.data import (
    BENCHMARKS,
    DataError,
    apibench,
    apps,
    builtin,
    get_benchmark,
    humaneval,
    humaneval_plus,
    leetcode,
    livecodebench,
    mbpp,
    mbpp_plus,
)


def test_registry_maps_names_to_modules() -> None:
    assert {
        "humaneval": humaneval,
        "humaneval_plus": humaneval_plus,
        "mbpp": mbpp,
        "mbpp_plus": mbpp_plus,
        "apps": apps,
        "livecodebench": livecodebench,
        "leetcode": leetcode,
        "apibench": apibench,
        "builtin": builtin,
    } == BENCHMARKS
    assert get_benchmark("HumanEval") is humaneval


def test_every_benchmark_has_the_same_shape() -> None:
    for name, module in BENCHMARKS.items():
        assert name == module.NAME
        assert callable(module.load) and callable(module.make_job)


def test_unknown_benchmark_lists_valid_names() -> None:
    with pytest.raises(
        DataError,
        match=r"^unknown benchmark 'humaneval\+'; valid names: apibench, apps, builtin, humaneval, humaneval_plus, "
        r"leetcode, livecodebench, mbpp, mbpp_plus$",
    ):
        get_benchmark("humaneval+")
