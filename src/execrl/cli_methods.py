"""The `execrl` commands of the methods' tooling: `tests` (PLUM's synthesis and validation),
`judge` (RLAIF's yes/no questions), `filtration` (PF-PPO's R² and its input), and `sandbox serve`
(the sandbox as an HTTP service). Each is its parser (`add_*`, called by `cli._parser` in the order
`execrl --help` lists them) and its handler (`run_*`, dispatched by `cli.main`); the logic lives in
the packages they call.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from execrl.cli import _generation_args, _positive
from execrl.types import Limits


def add_tests(sub: Any) -> None:
    """`execrl tests synthesize | validate`."""
    tg = sub.add_parser("tests", help="synthesize unit tests with a model, or validate them (PLUM)")
    tsub = tg.add_subparsers(dest="tests_command", required=True)
    tv = tsub.add_parser(
        "validate", help="keep the tests a reference solution (or sampled solutions) agree on"
    )
    tv.add_argument(
        "--benchmark",
        required=True,
        help="humaneval(_plus), mbpp(_plus), builtin, apps, livecodebench, leetcode",
    )
    tv.add_argument("--data", help="benchmark data file (defaults as for evaluate)")
    tv.add_argument(
        "--tests", required=True, help='JSONL rows {"task_id", "test", "source"} (see docs/plum.md)'
    )
    tv.add_argument(
        "--solutions", help='sampled solutions {"task_id", "completion"}: dual agreement, false-pass rate'
    )
    tv.add_argument("--out", required=True, help="each input row plus valid, reason, method (JSONL)")
    tv.add_argument("--timeout", type=_positive(float), default=3.0, help="CPU seconds per test (default 3)")
    tv.add_argument(
        "--workers", type=_positive(int), default=None, help="parallel sandboxes (default: CPU cores)"
    )
    tv.add_argument("--unsafe", action="store_true", help="run even if no isolation layer is available here")
    tv.add_argument(
        "--min-tests",
        type=_positive(int),
        default=1,
        help="a task's passing tests are kept only if it has this many distinct ones, else too_few_tests (default 1)",
    )
    tv.add_argument(
        "--adequacy",
        action="store_true",
        help="keep a task's passing tests only if together they reject trivial programs and mutants of the "
        "reference, else inadequate (recommended for PLUM labels; see docs/plum.md)",
    )
    tv.add_argument(
        "--max-mutants",
        type=int,
        default=24,
        help="with --adequacy: mutants of the reference per task (default 24)",
    )
    tv.add_argument(
        "--min-mutation-score",
        type=float,
        default=0.5,
        help="with --adequacy: the share of mutants the tests must reject (default 0.5)",
    )
    ts = tsub.add_parser(
        "synthesize", help="ask a model to write tests from each task's instruction and signature"
    )
    ts.add_argument(
        "--model", required=True, help="local HF model directory, or the model name at --api-base"
    )
    ts.add_argument("--benchmark", required=True, help="as for validate")
    ts.add_argument("--data", help="benchmark data file (defaults as for evaluate)")
    ts.add_argument("--out", required=True, help='JSONL rows {"task_id", "test", "source"}')
    ts.add_argument("--n", type=_positive(int), default=1, help="model samples per task (default 1)")
    _generation_args(ts, top_k=False)


def add_judge(sub: Any) -> None:
    """`execrl judge`."""
    jd = sub.add_parser("judge", help="ask an LLM judge yes/no questions about each sample (RLAIF)")
    jd.add_argument(
        "--judge-model", help="a local HF model directory as the judge (next-token probabilities)"
    )
    jd.add_argument(
        "--api-base", help="an OpenAI-compatible API serving the judge, e.g. http://127.0.0.1:8000/v1"
    )
    jd.add_argument("--judge", help="the judge's model name at --api-base")
    jd.add_argument("--api-key-env", help="name of the environment variable holding the API key")
    jd.add_argument("--benchmark", required=True, help="apibench, builtin, or any benchmark of evaluate")
    jd.add_argument("--data", help="benchmark data file (defaults as for evaluate)")
    jd.add_argument("--samples", required=True, help='JSONL rows {"task_id": ..., "completion": ...}')
    jd.add_argument(
        "--questions", help="questions YAML (default: the eight shipped with execrl, docs/rlaif.md)"
    )
    jd.add_argument(
        "--out", required=True, help="one row per sample: P(yes) per question, score, raw answers"
    )
    jd.add_argument("--cache", help="answers cache, reused on re-runs (default: OUT.cache.sqlite)")
    jd.add_argument(
        "--count", action="store_true", help="score = weighted count of yes answers (the paper's)"
    )
    jd.add_argument("--concurrency", type=_positive(int), default=8, help="requests in flight (default 8)")
    jd.add_argument("--max-retries", type=int, default=5, help="retries of a 429/5xx answer (default 5)")
    jd.add_argument(
        "--k", type=_positive(int), default=5, help="answers sampled where no log-probabilities (default 5)"
    )
    jd.add_argument("--batch-size", type=_positive(int), default=8, help="--judge-model: prompts per forward")
    jd.add_argument("--truth", help="`execrl evaluate --out` rows of the same samples: agreement and R²")


def add_filtration(sub: Any) -> None:
    """`execrl filtration analyze | collect`."""
    fl = sub.add_parser("filtration", help="PF-PPO policy filtration: compare strategies by R²")
    fl_sub = fl.add_subparsers(dest="filtration_command", required=True)
    fa = fl_sub.add_parser(
        "analyze", help="R² of reward against actual score on the samples each strategy keeps"
    )
    fa.add_argument(
        "--scores", required=True, help='JSONL rows {"prompt_id": ..., "reward": ..., "score": ...}'
    )
    fa.add_argument(
        "--bins", type=_positive(int), default=10, help="reward bins, one point each (default 10)"
    )
    fa.add_argument(
        "--strategies",
        default="none,bon,br,bw",
        help="comma-separated: none, bon, br, bw, top, top-random, top-bottom, pow-k (default none,bon,br,bw)",
    )
    fa.add_argument("--threshold", type=float, help="top*: keep samples with reward >= this")
    fa.add_argument("--low-threshold", type=float, help="top-bottom: also keep those with reward <= this")
    fa.add_argument("--pow-k", type=float, help="pow-k: weights proportional to |reward|^K")
    fa.add_argument("--seed", type=int, default=0, help="top-random's draws (default 0)")
    fa.add_argument("--plot", help="write points and fitted lines here (.png, .pdf or .svg)")

    fc = fl_sub.add_parser(
        "collect", help="sample a policy, score with a reward model and the tests: analyze's input"
    )
    fc.add_argument("--model", required=True, help="the policy: a local HF causal LM directory")
    fc.add_argument("--rm", required=True, help="reward model directory (execrl rm train's out)")
    fc.add_argument("--benchmark", required=True, help="the benchmark whose tasks are the prompts")
    fc.add_argument("--data", help="benchmark data file (defaults as for evaluate)")
    fc.add_argument("--out", required=True, help='write {"prompt_id", "reward", "score", ...} rows here')
    fc.add_argument("--n", type=_positive(int), default=5, help="samples per task (default 5, the paper's N)")
    fc.add_argument("--split", help='only tasks whose metadata "split" is this (default: every task)')
    fc.add_argument("--limit", type=_positive(int), default=None, help="only the first N tasks")
    fc.add_argument("--temperature", type=_positive(float), default=1.0)
    fc.add_argument("--top-p", type=float, default=1.0)
    fc.add_argument("--max-new-tokens", type=_positive(int), default=256)
    fc.add_argument("--chat", action="store_true", help="chat prompts through the tokenizers' templates")
    fc.add_argument("--seed", type=int, default=0)
    fc.add_argument("--timeout", type=_positive(float), default=3.0, help="CPU seconds per test (default 3)")
    fc.add_argument("--workers", type=_positive(int), default=None)


def add_sandbox(sub: Any) -> None:
    """`execrl sandbox serve`."""
    sb = sub.add_parser("sandbox", help="the sandbox as a batch HTTP service (docs/scale.md)")
    sbs = sb.add_subparsers(dest="sandbox_command", required=True).add_parser(
        "serve", help="serve the batch API (submit jobs, get results, health) over HTTP"
    )
    sbs.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; any other needs a token)"
    )
    sbs.add_argument("--port", type=int, default=8100, help="port (default 8100; 0 picks a free one)")
    sbs.add_argument("--workers", type=_positive(int), default=None, help="fork-servers (default: CPU cores)")
    sbs.add_argument(
        "--queue", type=_positive(int), default=4096, help="jobs waiting at most; beyond: 429 (default 4096)"
    )
    sbs.add_argument(
        "--max-batch", type=_positive(int), default=512, help="jobs per request at most (default 512)"
    )
    sbs.add_argument(
        "--max-body-mb", type=_positive(float), default=32.0, help="request body limit (default 32)"
    )
    sbs.add_argument(
        "--max-wait",
        type=_positive(float),
        default=30.0,
        help="longest wait for results a request may ask (default 30 s)",
    )
    sbs.add_argument(
        "--retain", type=_positive(int), default=50_000, help="finished job ids remembered (default 50000)"
    )
    sbs.add_argument("--cache", help="SQLite result cache file (shared across restarts); default in memory")
    sbs.add_argument("--no-cache", action="store_true", help="no result cache at all")
    sbs.add_argument(
        "--token-env",
        default="EXECRL_SANDBOX_TOKEN",
        help="environment variable holding the bearer token (default EXECRL_SANDBOX_TOKEN)",
    )
    sbs.add_argument("--unsafe", action="store_true", help="run even if no isolation layer is available here")


def run_tests(args: argparse.Namespace) -> int:
    from execrl.data import DataError

    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise DataError(f"{args.out}: the output directory does not exist")
    if args.tests_command == "validate":
        from execrl.eval.evaluate import write_jsonl_atomic
        from execrl.testgen.validate import validate

        v = validate(
            args.benchmark,
            args.tests,
            data=args.data,
            solutions=args.solutions,
            limits=Limits(timeout=args.timeout),
            workers=args.workers,
            allow_unsafe=args.unsafe,
            progress=True,
            min_tests=args.min_tests,
            adequacy=args.adequacy,
            max_mutants=args.max_mutants,
            min_mutation_score=args.min_mutation_score,
        )
        write_jsonl_atomic(args.out, v.out_rows())
        print(v.report())
        print(json.dumps(v.quality))
        return 0
    from execrl.testgen.synthesize import SynthesisConfig, run

    cfg = SynthesisConfig(
        model=args.model,
        benchmark=args.benchmark,
        data=args.data,
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        limit=args.limit,
        chat=args.chat,
        backend=args.backend,
        api_base=args.api_base,
        api_key_env=args.api_key_env,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    summary = run(cfg, args.out)
    print(json.dumps(summary))
    return 0


def run_judge(args: argparse.Namespace) -> int:
    from execrl.data import DataError, read_jsonl
    from execrl.eval.evaluate import write_jsonl_atomic
    from execrl.rewards import judge

    if bool(args.judge_model) == bool(args.api_base or args.judge):
        raise DataError("give either --judge-model DIR or --api-base URL with --judge NAME")
    if args.api_base and not args.judge:
        raise DataError("--api-base needs --judge NAME (the judge's model name at that API)")
    if args.max_retries < 0:
        raise DataError(f"--max-retries must be >= 0, got {args.max_retries}")
    if not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        raise DataError(f"{args.out}: the output directory does not exist")
    questions = judge.load_questions(args.questions)
    truth = [row for _, row in read_jsonl(args.truth)] if args.truth else None
    backend: judge.JudgeBackend
    if args.judge_model:
        backend = judge.HFJudge(args.judge_model, batch_size=args.batch_size)
    else:
        backend = judge.OpenAIJudge(
            args.api_base,
            args.judge,
            api_key_env=args.api_key_env,
            concurrency=args.concurrency,
            max_retries=args.max_retries,
            samples=args.k,
        )
        backend.check()
    cache = judge.JudgeCache(args.cache or args.out + ".cache.sqlite")
    try:
        rows, summary = judge.judge_samples(
            args.benchmark,
            args.samples,
            backend,
            questions,
            data=args.data,
            cache=cache,
            count=args.count,
            progress=True,
        )
    finally:
        cache.close()
    write_jsonl_atomic(args.out, rows)
    lines = [f"judge       {summary['judge']}: {summary['n']} samples x {len(questions.questions)} questions"]
    lines += [
        f"  {q:<12} P(yes) {p:.3f}" if p is not None else f"  {q:<12} unanswered"
        for q, p in summary["p_yes"].items()
    ]
    lines.append(f"mean score  {summary['score']:.3f} of {summary['max_score']:g}")
    if truth is not None:
        from execrl.eval import judge_reliability

        truth_of = {q.id: q.truth for q in questions.questions}
        summary["reliability"] = judge_reliability.reliability(rows, truth, truth_of)
        lines += ["", judge_reliability.table(summary["reliability"])]
    print("\n".join(lines))
    print(json.dumps(summary))
    return 0


def run_filtration(args: argparse.Namespace) -> int:
    from execrl.data import DataError
    from execrl.filtration import analyze

    if args.filtration_command == "collect":
        from execrl.filtration.collect import collect

        summary = collect(args.model, args.rm, args.benchmark, args.out, data=args.data, n=args.n,
                          split=args.split, limit=args.limit, temperature=args.temperature, top_p=args.top_p,
                          max_new_tokens=args.max_new_tokens, seed=args.seed, timeout=args.timeout,
                          workers=args.workers, chat=args.chat, progress=True)  # fmt: skip
        print(json.dumps(summary))
        return 0

    strategies = list(dict.fromkeys(s.strip() for s in args.strategies.split(",") if s.strip()))
    options = {"threshold": args.threshold, "low_threshold": args.low_threshold, "k": args.pow_k}
    try:
        analyze.check_options(strategies, bins=args.bins, **options)
    except ValueError as e:
        raise DataError(str(e)) from None
    if args.plot:
        analyze.check_plot(args.plot)
    samples = analyze.read_scores(args.scores)
    fits = analyze.analyze(samples, strategies, bins=args.bins, seed=args.seed, **options)
    if args.plot:
        analyze.plot(fits, args.plot)
    print(analyze.table(fits))
    print(json.dumps({f.strategy: f.r2 for f in fits}))
    return 0


def run_sandbox(args: argparse.Namespace) -> int:
    from execrl.data import DataError
    from execrl.sandbox.service import ServiceError, serve

    try:
        serve(
            args.host,
            args.port,
            workers=args.workers,
            queue_size=args.queue,
            max_batch=args.max_batch,
            max_body_mb=args.max_body_mb,
            max_wait=args.max_wait,
            retain=args.retain,
            cache=args.cache,
            no_cache=args.no_cache,
            token_env=args.token_env,
            allow_unsafe=args.unsafe,
        )
    except (ServiceError, ImportError, OSError) as e:
        raise DataError(str(e)) from None
    return 0
