"""The framework adapters against their real contracts: verl's `compute_score`, OpenRLHF's remote
reward protocol over a real local HTTP server. (TRL: tests/test_trl_grpo.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from engine_stubs import HalfBrokenEngine
from execrl.cli import main as cli
from execrl.integrations import openrlhf, verl
from execrl.rewards.labeled import LabeledReward
from execrl.types import Limits

SUM_IO = json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})
SUM_PROGRAM = "```python\nprint(sum(map(int, input().split())))\n```"
ADD_CALL = {"fn_name": "add", "inputs": [[1, 2], [2, 2]], "outputs": [3, 4]}
BUILTIN_TASK = "builtin/0/2"  # stdin: drop the first number, print the even ones joined by commas
BUILTIN_SOLUTION = "```python\nxs = [int(t) for t in input().split()][1:]\nprint(','.join(str(x) for x in xs if x % 2 == 0))\n```"


@pytest.fixture
def verl_on(executor, monkeypatch) -> Iterator[Any]:
    """verl's module-level rewards on the session's sandbox; `broken()` makes every odd job fail on our side."""
    rewards: dict[Any, LabeledReward] = {}
    monkeypatch.setattr(verl, "_rewards", rewards)

    def use(engine: Any) -> None:
        for kind in ("binary", "pass_ratio"):
            rewards[(kind, 3.0)] = LabeledReward(kind=kind, limits=Limits(timeout=3.0), executor=engine)

    use(executor)
    yield lambda: use(HalfBrokenEngine(executor))


def test_verl_stdin_tests_as_ground_truth(verl_on):
    assert verl.compute_score("code", SUM_PROGRAM, SUM_IO) == 1.0
    assert verl.compute_score("code", "```python\nprint(3)\n```", SUM_IO) == 0.0
    assert verl.compute_score("code", "```python\nprint(3)\n```", SUM_IO, kind="pass_ratio") == 0.5


def test_verl_call_tests_as_a_decoded_dict_and_details(verl_on):
    out = verl.compute_score("code", "def add(a, b):\n    return a + b\n", ADD_CALL, details=True)
    assert out == {
        "score": 1.0,
        "pass_ratio": 1.0,
        "tests_passed": 2.0,
        "tests_total": 2.0,
        "sandbox_error": 0.0,
    }


def test_verl_assert_tests(verl_on):
    gt = {"asserts": ["assert f(1) == 1", "assert f(2) == 3"], "setup": "import math"}
    assert verl.compute_score("code", "def f(x):\n    return x\n", gt, kind="pass_ratio") == 0.5


def test_verl_task_id_of_a_benchmark_named_by_data_source_or_extra_info(verl_on):
    assert verl.compute_score("builtin", BUILTIN_SOLUTION, BUILTIN_TASK) == 1.0
    assert verl.compute_score("my-mix", BUILTIN_SOLUTION, BUILTIN_TASK, {"benchmark": "builtin"}) == 1.0
    assert verl.compute_score("builtin", "```python\nprint(1)\n```", BUILTIN_TASK) == 0.0


def test_verl_batch_form_scores_in_order(verl_on):
    out = verl.compute_score_batch(
        data_sources=["code", "code", "builtin"],
        solution_strs=[SUM_PROGRAM, "print(0)", BUILTIN_SOLUTION],
        ground_truths=[SUM_IO, SUM_IO, BUILTIN_TASK],
        extra_infos=[None, None, None],
    )
    assert out == [1.0, 0.0, 1.0]


def test_verl_sandbox_error_is_never_a_failed_test(verl_on):
    broken = verl_on
    broken()  # the second of two jobs fails on our side
    with pytest.raises(verl.SandboxError):
        verl.compute_score_batch(["code"] * 2, [SUM_PROGRAM] * 2, [SUM_IO] * 2)
    out = verl.compute_score_batch(
        ["code"] * 2, [SUM_PROGRAM] * 2, [SUM_IO] * 2, on_sandbox_error=0.5, details=True
    )
    assert [o["score"] for o in out] == [1.0, 0.5]
    assert [o["sandbox_error"] for o in out] == [0.0, 1.0]


def test_verl_unknown_task_names_it(verl_on):
    from execrl.data import DataError

    with pytest.raises(DataError, match="nope"):
        verl.compute_score("builtin", "x", "nope")


@pytest.fixture
def server(executor) -> Iterator[openrlhf.RewardServer]:
    srv = openrlhf.make_server(LabeledReward("builtin", executor=executor), port=0, strip=["<|endoftext|>"])
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_openrlhf_remote_rm_protocol_over_http(server):
    prompt = "<|user|>\nsum two numbers\n<|assistant|>\n"
    body = {
        "query": [
            "<|pad|><|pad|>" + prompt + SUM_PROGRAM + "<|endoftext|>",
            prompt + "print(0)",
            prompt + BUILTIN_SOLUTION,
        ],
        "prompts": [prompt] * 3,
        "labels": [SUM_IO, SUM_IO, BUILTIN_TASK],
    }
    r = httpx.post(server.url, json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["rewards"] == [1.0, 0.0, 1.0]
    assert out["scores"] == out["rewards"]
    assert out["extra_logs"]["sandbox_error"] == [0.0, 0.0, 0.0]
    assert out["extra_logs"]["tests_total"][0] == 2


def test_openrlhf_bad_requests_name_the_field(server):
    r = httpx.post(server.url, json={"query": ["a"], "prompts": ["a"]}, timeout=10)
    assert r.status_code == 400 and "labels" in r.json()["error"]
    r = httpx.post(server.url, json={"query": ["abc"], "prompts": ["x"], "labels": [SUM_IO]}, timeout=10)
    assert r.status_code == 400 and "sample 0" in r.json()["error"]
    r = httpx.post(server.url.replace("/get_reward", "/other"), json={}, timeout=10)
    assert r.status_code == 404


def test_openrlhf_sandbox_error_is_503_unless_a_value_is_chosen(executor):
    srv = openrlhf.make_server(LabeledReward(executor=HalfBrokenEngine(executor)), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    body = {"query": ["p" + SUM_PROGRAM] * 2, "prompts": ["p"] * 2, "labels": [SUM_IO] * 2}
    try:
        r = httpx.post(srv.url, json=body, timeout=60)
        assert r.status_code == 503
        srv.on_sandbox_error = 0.25
        r = httpx.post(srv.url, json=body, timeout=60)
        assert r.json()["rewards"] == [1.0, 0.25]
        assert r.json()["extra_logs"]["sandbox_error"] == [0.0, 1.0]
    finally:
        srv.shutdown()
        srv.server_close()


def test_reward_server_cli_help_lists_its_flags(capsys):
    with pytest.raises(SystemExit):
        cli(["reward-server", "--help"])
    assert "--on-sandbox-error" in capsys.readouterr().out


def test_openrlhf_in_process_reward_func_returns_tensors(executor, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(openrlhf, "_in_process", [LabeledReward("builtin", executor=executor)])
    out = openrlhf.reward_func(
        ["p" + SUM_PROGRAM, "p" + BUILTIN_SOLUTION], ["p", "p"], [SUM_IO, BUILTIN_TASK]
    )
    assert torch.equal(out["rewards"], torch.tensor([1.0, 1.0]))
    assert set(out["extra_logs"]) == {"pass_ratio", "tests_passed", "tests_total", "sandbox_error"}
    monkeypatch.setattr(openrlhf, "_in_process", [LabeledReward(executor=HalfBrokenEngine(executor))])
    with pytest.raises(openrlhf.SandboxFailed):
        openrlhf.reward_func(["p" + SUM_PROGRAM] * 2, ["p"] * 2, [SUM_IO] * 2)
