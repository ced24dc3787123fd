"""`execrl bench`: sample programs from a model, run them through the sandbox, report pass@k.

    out/
      config.json     the settings of the run (a resumed run must match the sample-relevant ones)
      samples.jsonl   one row per sample, appended a generation chunk at a time: task_id, completion
                      (what the job runs), raw (the model's text), finish_reason, num_tokens
      results.jsonl   one row per sample, as `execrl evaluate --out` writes them
      summary.json    pass@k overall and per metadata value (e.g. APPS difficulty), status counts
      report.md       the same for people, with report.png (samples by status; pass@k per group)
      cache.sqlite    execution results, so a re-run does not execute finished samples again

Order of work: every setting and the benchmark data are checked first (a bad input fails before
`out` is touched), then the generator is built only if some task still lacks samples (so a bad
model or an unreachable API also fails before anything is written), then samples are generated,
executed and summarized.

Resume: re-running with the same `out` generates only what is missing (a finished run generates
nothing and rewrites the same summary). The settings that shape samples must match the stored run,
else `DataError`: the model (a local directory compared by its real path), the benchmark, the data
file's content (sha256, not its path), temperature, top_p, top_k, max_new_tokens, chat and seed.
`n` and `limit` may grow (more samples per task, more tasks), never shrink: samples.jsonl must stay
exactly the set the summary is computed from. Everything else (k, timeout, workers, batch size,
backend, api_base) may change between runs. A half-written last line (an interrupted write) is cut
off on resume.

Seeds: every generation call gets `seed`; the backends derive each sample's seed from (seed, the
rendered prompt, the sample index), so a task's samples do not depend on which other tasks share
its chunk, and a resumed run draws the same samples as an uninterrupted one. A task that holds
some but not all of its `n` samples is generated again in full and only the missing tail is kept.

`execrl evaluate --benchmark B [--data D] --samples out/samples.jsonl --k K` gives the same pass@k
as summary.json, because the stored `completion` is the post-processed text the jobs were built
from and the default limits are the same (pass bench's `--timeout` to evaluate if you changed it).
Everything in summary.json but `run` (this invocation's counts and timings) is reproduced by a
re-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from execrl.data import Benchmark, DataError, get_benchmark, hub
from execrl.data.jsonl import read_rows
from execrl.eval.evaluate import Evaluation, evaluate
from execrl.eval.passk import pass_at_k
from execrl.generation import GenerationError, Generator, SamplingParams
from execrl.types import Limits

SAME_ON_RESUME = (
    "model_id",
    "benchmark",
    "data_sha256",
    "temperature",
    "top_p",
    "top_k",
    "max_new_tokens",
    "chat",
    "seed",
)
"""config.json keys a resumed run must match."""
GROW_ON_RESUME = ("n", "limit")
"""config.json keys a resumed run may increase (None for limit means every task)."""
BACKENDS = ("hf", "vllm", "openai")
API_RETRIES = 2
"""Retries of a failed API request: few, so that a dead server fails the run in seconds."""
API_TIMEOUT = 600.0
"""Seconds to wait for one API answer (not streamed: it covers the server's whole generation)."""


@dataclass
class BenchConfig:
    model: str
    """A local HF model directory, or a model name served by --api-base."""
    benchmark: str
    out: str
    data: str | None = None
    n: int = 10
    k: list[int] = field(default_factory=lambda: [1, 10])
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 0
    max_new_tokens: int = 512
    limit: int | None = None
    """Only the first `limit` tasks of the benchmark."""
    chat: bool = False
    """Chat-style prompts (the model's chat template) instead of completion-style."""
    backend: str = "hf"
    """hf (default), vllm, or openai (needs api_base; an api_base alone also means openai)."""
    api_base: str | None = None
    api_key_env: str | None = None
    batch_size: int = 8
    """Prompts per generation call (each yields n samples); for hf also rows per forward pass."""
    seed: int = 0
    timeout: float = 3.0
    workers: int | None = None
    unsafe: bool = False
    """Execute even where no sandbox layer confines programs (as `execrl evaluate --unsafe`)."""


# ---------------------------------------------------------------------------------------------
# Checks and set-up.


def validate(cfg: BenchConfig) -> None:
    """Raise `DataError` for a setting that cannot work, before anything is loaded or written."""
    if cfg.n < 1:
        raise DataError(f"--n must be at least 1, got {cfg.n}")
    if not cfg.k or any(k < 1 for k in cfg.k):
        raise DataError(f"--k values must be positive integers, got {cfg.k}")
    if cfg.limit is not None and cfg.limit < 1:
        raise DataError(f"--limit must be at least 1, got {cfg.limit}")
    if cfg.top_k < 0:
        raise DataError(f"--top-k must be >= 0 (0: off), got {cfg.top_k}")
    if cfg.batch_size < 1:
        raise DataError(f"--batch-size must be at least 1, got {cfg.batch_size}")
    if cfg.timeout <= 0:
        raise DataError(f"--timeout must be positive, got {cfg.timeout}")
    if cfg.backend not in BACKENDS:
        raise DataError(f"unknown backend {cfg.backend!r}; choose {', '.join(BACKENDS)}")
    if cfg.backend == "openai" and not cfg.api_base:
        raise DataError("--backend openai needs --api-base, e.g. http://127.0.0.1:8000/v1")
    if cfg.api_base is not None and cfg.backend == "vllm":
        raise DataError("--api-base is for --backend openai; --backend vllm runs the model in this process")
    try:
        _sampling(cfg, ())
    except ValueError as e:
        raise DataError(f"bad sampling settings: {e}") from None
    if os.path.exists(cfg.out) and not os.path.isdir(cfg.out):
        raise DataError(f"{cfg.out}: --out exists and is not a directory")


def _sampling(cfg: BenchConfig, stop: tuple[str, ...]) -> SamplingParams:
    return SamplingParams(
        n=cfg.n,
        temperature=cfg.temperature,
        top_p=cfg.top_p if cfg.temperature > 0 else 1.0,
        top_k=cfg.top_k,
        max_new_tokens=cfg.max_new_tokens,
        stop=stop,
        seed=cfg.seed,
    )


def load_problems(cfg: BenchConfig, bench: Benchmark) -> list[Any]:
    """The benchmark's first `limit` problems; `DataError` if one of them cannot become a job."""
    problems = list(bench.load(cfg.data).values())[: cfg.limit]
    if not problems:
        raise DataError(f"{cfg.data or bench.NAME}: the benchmark data holds no tasks")
    limits = Limits(timeout=cfg.timeout)
    for p in problems:  # before generating: a task without tests would fail the run at execution
        try:
            bench.make_job(p, "", limits)
        except DataError as e:
            raise DataError(f"{bench.NAME} task {p.task_id}: {e}") from None
    return problems


def make_generator(cfg: BenchConfig) -> Generator:
    """The backend of `cfg`; for an API, checks first that it answers at all."""
    if cfg.api_base is not None or cfg.backend == "openai":
        from execrl.generation.openai import OpenAIGenerator

        if cfg.api_base is None:
            raise DataError("--backend openai needs --api-base")
        generator = OpenAIGenerator(
            cfg.api_base,
            cfg.model,
            api_key_env=cfg.api_key_env,
            concurrency=cfg.batch_size,
            max_retries=API_RETRIES,
            timeout=API_TIMEOUT,
            backoff=0.25,
        )
        try:
            _probe(cfg.api_base, cfg.api_key_env)
        except GenerationError:
            generator.close()
            raise
        return generator
    if cfg.backend == "vllm":
        from execrl.generation.vllm import VLLMGenerator

        return VLLMGenerator(cfg.model)
    from execrl.generation.hf import HFGenerator

    return HFGenerator(cfg.model, batch_size=cfg.batch_size)


def _probe(api_base: str, api_key_env: str | None) -> None:
    """`GenerationError` unless `{api_base}/models` answers (any HTTP status but 401/403 will do:
    some servers have no such route). Two quick attempts, so that a dead server fails in seconds."""
    import httpx

    url = api_base.rstrip("/") + "/models"
    key = os.environ.get(api_key_env, "") if api_key_env else ""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    for attempt in range(2):
        try:
            response = httpx.get(url, headers=headers, timeout=10.0)
            break
        except httpx.TransportError as e:
            if attempt == 1:
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                raise GenerationError(f"cannot reach the API at {api_base}: {why}") from None
            time.sleep(0.5)
    if response.status_code in (401, 403):
        hint = f" (the key from ${api_key_env})" if api_key_env else "; set --api-key-env"
        raise GenerationError(f"{url} refused the request with {response.status_code}{hint}")


def _model_id(model: str) -> str:
    """A local model directory by its real path (so ./m and /abs/m match), else the name as given."""
    return os.path.realpath(model) if os.path.exists(model) else model


def _sha256(path: str | None) -> str | None:
    if path is None:
        return None
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.hexdigest()


def _config(cfg: BenchConfig, bench: Benchmark) -> dict[str, Any]:
    return asdict(cfg) | {
        "benchmark": bench.NAME,
        "model_id": _model_id(cfg.model),
        "data_sha256": _sha256(cfg.data),
    }


def _check_resume(cfg: BenchConfig, mine: dict[str, Any]) -> None:
    """`DataError` if `cfg.out` holds samples drawn with other settings than `mine`."""
    samples = os.path.join(cfg.out, "samples.jsonl")
    if not os.path.exists(samples) or os.path.getsize(samples) == 0:
        return  # nothing to protect: a first attempt that failed before its first sample
    path = os.path.join(cfg.out, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            theirs = json.load(f)
        if not isinstance(theirs, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        raise DataError(
            f"{cfg.out} holds samples.jsonl but no config.json: not an execrl bench run; use another --out"
        ) from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({e}); use another --out") from None
    for name in SAME_ON_RESUME:
        if theirs.get(name) != mine[name]:
            raise DataError(
                f"{cfg.out} holds a run with {name}={theirs.get(name)!r}, this one asks for {mine[name]!r}; "
                "use the same settings to resume, or another --out"
            )
    for name in GROW_ON_RESUME:
        old, new = theirs.get(name), mine[name]
        if old is not None and (new is None or new >= old):
            continue
        if old is None and new is None:
            continue
        raise DataError(
            f"{cfg.out} holds a run with {name}={old!r}, this one asks for {new!r}: {name} may grow on "
            "resume but not shrink; use another --out"
        )


# ---------------------------------------------------------------------------------------------
# Generation.


def _cut_partial_line(path: str) -> None:
    """Drop a last line without its newline: the trace of a write that was interrupted."""
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return
        f.seek(end - 1)
        if f.read(1) == b"\n":
            return
        pos, keep = end, 0
        while pos > 0:
            step = min(pos, 1 << 16)
            pos -= step
            f.seek(pos)
            i = f.read(step).rfind(b"\n")
            if i >= 0:
                keep = pos + i + 1
                break
        f.truncate(keep)
    print(f"execrl: note: dropped an incomplete last line of {path}", file=sys.stderr)


def existing_samples(path: str) -> Counter[str]:
    """Samples already in `path`, per task_id."""
    have: Counter[str] = Counter()
    if os.path.exists(path):
        _cut_partial_line(path)
        for row in read_rows(path):
            have[row.ident("task_id")] += 1
    return have


def _progress_bar(total: int, desc: str, unit: str) -> Any:
    from tqdm import tqdm

    tty = bool(getattr(sys.stderr, "isatty", lambda: False)())
    # Always shown (as promised); off a terminal it is redrawn rarely, so that logs stay short.
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, mininterval=0.2 if tty else 30.0)


def generate_samples(
    cfg: BenchConfig,
    bench: Benchmark,
    problems: list[Any],
    have: Counter[str],
    generator: Generator,
    progress: bool = True,
) -> int:
    """Append to samples.jsonl until each of `problems` has `n` samples. Returns how many it wrote."""
    todo = [p for p in problems if have[p.task_id] < cfg.n]
    if not todo:
        return 0
    params = _sampling(cfg, () if cfg.chat else tuple(bench.STOP))
    total = sum(cfg.n - have[p.task_id] for p in todo)
    bar = _progress_bar(total, "generate", "sample") if progress else None
    written = 0
    try:
        with open(os.path.join(cfg.out, "samples.jsonl"), "a", encoding="utf-8") as f:
            for i in range(0, len(todo), cfg.batch_size):
                chunk = todo[i : i + cfg.batch_size]
                outputs = generator.generate([bench.prompt(p, chat=cfg.chat) for p in chunk], params)
                if len(outputs) != len(chunk) or any(len(outs) != cfg.n for outs in outputs):
                    raise GenerationError(
                        f"the backend returned {[len(o) for o in outputs]} completions for "
                        f"{len(chunk)} prompts, {cfg.n} each"
                    )
                lines = []
                for p, outs in zip(chunk, outputs):
                    # A task with some samples already: its first ones were drawn again, identically.
                    for out in outs[have[p.task_id] :]:
                        row = {
                            "task_id": p.task_id,
                            "completion": bench.completion_from_output(p, out.text, chat=cfg.chat),
                            "raw": out.text,
                            "finish_reason": out.finish_reason,
                            "num_tokens": out.num_tokens,
                        }
                        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
                f.write("".join(lines))  # one write per chunk: an interruption cuts at most its tail
                f.flush()
                written += len(lines)
                if bar is not None:
                    bar.update(len(lines))
    finally:
        if bar is not None:
            bar.close()
    return written


# ---------------------------------------------------------------------------------------------
# Summary and report.


def summarize(
    cfg: BenchConfig, bench: Benchmark, problems: list[Any], ev: Evaluation, run: dict[str, Any]
) -> dict[str, Any]:
    by_id = {p.task_id: p for p in problems}
    groups: dict[str, dict[str, dict[str, list[bool]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for s, r in zip(ev.samples, ev.results):
        problem = by_id.get(s.task_id)
        for key, value in bench.metadata(problem).items() if problem is not None else ():
            groups[key][str(value) or "(none)"][s.task_id].append(r.passed)
    per_task = Counter(s.task_id for s in ev.samples)
    return {
        "model": cfg.model,
        "benchmark": bench.NAME,
        "tasks": len(per_task),
        "samples": len(ev.samples),
        "n": cfg.n,
        "temperature": cfg.temperature,
        "chat": cfg.chat,
        "pass_at_k": ev.pass_at_k(cfg.k),
        "status": dict(ev.status_counts().most_common()),
        "runtime_errors": dict(
            Counter(
                r.error.type for r in ev.results if r.error and r.status.value == "runtime_error"
            ).most_common()
        ),
        "by": {
            key: {value: pass_at_k(tasks, cfg.k) for value, tasks in sorted(vals.items())}
            for key, vals in sorted(groups.items())
        },
        "tasks_by": {
            key: {value: len(tasks) for value, tasks in sorted(vals.items())}
            for key, vals in sorted(groups.items())
        },
        "isolation": ev.isolation.layers() if ev.isolation else [],
        "run": run,
    }


def write_report(out: str, summary: dict[str, Any]) -> None:
    total = max(1, summary["samples"])
    run = summary["run"]
    lines = [
        f"# {summary['benchmark']} — {summary['model']}",
        "",
        f"{summary['tasks']} tasks, {summary['n']} samples each ({summary['samples']} in all), "
        f"temperature {summary['temperature']}{', chat prompts' if summary['chat'] else ''}. "
        f"This run: {run['generated']} samples generated in {run['seconds']['generation']} s, "
        f"execution {run['seconds']['execution']} s.",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v:.4f} |" for k, v in summary["pass_at_k"].items()],
        "",
        "| status | samples | share |",
        "|---|---|---|",
        *[f"| {k} | {v} | {v / total:.1%} |" for k, v in summary["status"].items()],
    ]
    if summary["runtime_errors"]:
        lines += [
            "",
            "Runtime errors: " + ", ".join(f"{k} {v}" for k, v in summary["runtime_errors"].items()),
        ]
    for key, values in summary["by"].items():
        ks = sorted({k for v in values.values() for k in v}, key=lambda m: int(m.split("@")[1]))
        counts = summary["tasks_by"].get(key, {})
        lines += ["", f"| {key} | tasks | " + " | ".join(ks) + " |", "|---|---|" + "---|" * len(ks)]
        lines += [
            f"| {value} | {counts.get(value, '')} | "
            + " | ".join(f"{metrics[k]:.4f}" if k in metrics else "–" for k in ks)
            + " |"
            for value, metrics in values.items()
        ]
    if _plot(out, summary):
        lines += ["", "![samples by status, pass@k](report.png)"]
    lines += ["", f"Isolation: {', '.join(summary['isolation']) or 'none'}", ""]
    _write_atomic(os.path.join(out, "report.md"), "\n".join(lines))


def _plot(out: str, summary: dict[str, Any]) -> bool:
    """report.png: samples by status, and pass@k per value of the first metadata key (or overall)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    group = next(iter(summary["by"].items()), None)
    key, values = group if group else ("", {"all tasks": summary["pass_at_k"]})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    status = list(summary["status"].items())
    left.barh([s for s, _ in status][::-1], [c for _, c in status][::-1], color="#4c72b0")
    left.set_title("samples by status")
    names = list(values)
    ks = sorted({k for v in values.values() for k in v}, key=lambda m: int(m.split("@")[1]))
    width = 0.8 / max(1, len(ks))
    for j, k in enumerate(ks):
        right.bar(
            [i + j * width for i in range(len(names))], [values[n].get(k, 0) for n in names], width, label=k
        )
    right.set_xticks([i + width * (len(ks) - 1) / 2 for i in range(len(names))], names)
    right.set_ylim(0, 1)
    right.set_title(f"pass@k by {key}" if key else "pass@k")
    if ks:
        right.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "report.png"), dpi=100)
    plt.close(fig)
    return True


def _write_atomic(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------------------------
# The whole run.


def run(cfg: BenchConfig, generator: Generator | None = None, progress: bool = True) -> dict[str, Any]:
    """Generate what is missing, execute, write results/summary/report; return the summary.

    `generator` (default: `make_generator(cfg)`, built only when something must be generated, and
    closed afterwards) produces the samples."""
    validate(cfg)
    bench = get_benchmark(cfg.benchmark)
    cfg.data = hub.resolve(cfg.data)  # a hub name becomes a local JSONL copy
    problems = load_problems(cfg, bench)
    config = _config(cfg, bench)
    _check_resume(cfg, config)
    samples_path = os.path.join(cfg.out, "samples.jsonl")
    have = existing_samples(samples_path)

    generated, generation_s = 0, 0.0
    if any(have[p.task_id] < cfg.n for p in problems):
        owned = generator is None
        gen = make_generator(cfg) if generator is None else generator
        try:
            _start_out(cfg, config)
            t0 = time.monotonic()
            generated = generate_samples(cfg, bench, problems, have, gen, progress)
            generation_s = time.monotonic() - t0
        finally:
            close = getattr(gen, "close", None)
            if owned and callable(close):
                close()
    else:
        _start_out(cfg, config)

    from execrl.sandbox.cache import ResultCache
    from execrl.sandbox.executor import LocalExecutor

    cache = ResultCache(os.path.join(cfg.out, "cache.sqlite"))
    with LocalExecutor(workers=cfg.workers, cache=cache, allow_unsafe=cfg.unsafe) as ex:
        ev = evaluate(
            bench.NAME,
            samples_path,
            data=cfg.data,
            limits=Limits(timeout=cfg.timeout),
            executor=ex,
            progress=progress,
        )
    ev.write_jsonl(os.path.join(cfg.out, "results.jsonl"))
    run_info = {
        "generated": generated,
        "seconds": {"generation": round(generation_s, 2), "execution": round(ev.seconds, 2)},
    }
    summary = summarize(cfg, bench, problems, ev, run_info)
    _write_atomic(os.path.join(cfg.out, "summary.json"), json.dumps(summary, indent=2) + "\n")
    write_report(cfg.out, summary)
    return summary


def _start_out(cfg: BenchConfig, config: dict[str, Any]) -> None:
    """Create `out` and record this run's settings in config.json."""
    try:
        os.makedirs(cfg.out, exist_ok=True)
        _write_atomic(os.path.join(cfg.out, "config.json"), json.dumps(config, indent=2) + "\n")
    except OSError as e:
        raise DataError(f"{cfg.out}: cannot write the output directory ({e.strerror or e})") from None
