"""The embedded default against its targets: SFT time on this machine, held-out (test split)
greedy pass@1 in [15%, 60%], pass@10 at temperature 0.8 above pass@1, failure statuses.

    python bench/embedded.py [--steps 600] [--limit 446] [--skip-train]

Trains with `execrl.embedded.train` (timed), then runs `execrl bench` twice on the built-in test
split (the first `--limit` tasks of `--benchmark builtin` are the test split): greedy with n=1,
and n=10 at temperature 0.8. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

from execrl.cli import main as cli
from execrl.embedded import EmbeddedConfig, train


def bench(model: str, out: str, limit: int, n: int, temperature: float) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    args = ["bench", "--model", model, "--benchmark", "builtin", "--out", out, "--n", str(n), "--k", f"1,{n}" if n > 1 else "1",
            "--temperature", str(temperature), "--limit", str(limit), "--max-new-tokens", "160", "--batch-size", "64", "--timeout", "1"]  # fmt: skip
    assert cli(args) == 0
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/embedded")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--limit", type=int, default=446)
    ap.add_argument("--skip-train", action="store_true")
    args = ap.parse_args()
    model = os.path.join(args.out, "model")
    if not args.skip_train:
        t0 = time.perf_counter()
        train(EmbeddedConfig(out=args.out, max_steps=args.steps))
        print(f"SFT from scratch: {time.perf_counter() - t0:.0f} s on {os.cpu_count()} cores")
    greedy = bench(model, os.path.join(args.out, "eval-greedy"), args.limit, 1, 0.0)
    sampled = bench(model, os.path.join(args.out, "eval-t0.8"), args.limit, 10, 0.8)
    print(f"held-out greedy pass@1: {greedy['pass_at_k']['pass@1']:.3f}  (target 0.15-0.60)")
    print(
        f"held-out T=0.8 pass@1: {sampled['pass_at_k']['pass@1']:.3f}  pass@10: {sampled['pass_at_k']['pass@10']:.3f}"
    )
    print(f"greedy statuses: {greedy['status']}")
    print(f"greedy runtime errors: {greedy['runtime_errors']}")
    print(f"T=0.8 statuses: {sampled['status']}")


if __name__ == "__main__":
    main()
