"""RLTF's unit-test feedback (Liu et al., 2023, arXiv 2307.04349): coarse, adaptive, fine-grained.

    reward = RLTFReward("humaneval")                     # adaptive scalar + line penalties
    reward(completions=[text], task_id=["HumanEval/0"])  # TRL signature -> [-0.3 + 1.3 * 2/7]
    scored = reward.score(["HumanEval/0"], [text])       # + each sample's Penalty
    token_rewards([s.penalty for s in scored], offsets, mask)   # (B, T), -0.3 on the penalised tokens

Scalars (`coarse`, `adaptive`; None after a `sandbox_error`, as for every execrl reward):

| verdict                                                    | coarse | adaptive                 |
|------------------------------------------------------------|--------|--------------------------|
| syntax_error                                               | -1.0   | -1.0                     |
| runtime_error, timeout, memory/output exceeded, no_result   | -0.6   | -0.6                     |
| failed (every test ran to a verdict, some were wrong)      | -0.3   | -0.3 + 1.3 * passed/total |
| passed                                                     | +1.0   | +1.0                     |

The *verdict* is the job's status, except that a `failed` job in which some later test crashed
(runtime error, timeout, memory/output exceeded, no result) counts as that crash: "a program that
ran and failed some tests" is one whose every test ended in pass or wrong answer. Otherwise the
reward of a program that is wrong on test 1 and crashes on test 2 would differ from one that
crashes on test 1 and is wrong on test 2 (the job status is its first non-passing test's). A job
with any test lost to a sandbox_error gets no reward at all, like a sandbox_error job.

Fine-grained feedback, a `Penalty` of 0.3 on the tokens in its `scope` (RLTF's U_global, U_line,
U_ignore), ported from Python 3.8's messages to those of 3.10–3.13 (which word every message the
rules read identically; the tests hold the wordings harvested from each interpreter):

- `global`: timeout, memory or output exceeded, RecursionError (also a program too deep to
  compile), and syntax errors made by the program ending early: "'(' was never closed",
  "unexpected EOF while parsing", "expected an indented block" after a block header with no code
  after it, and, on the last code line, the messages that 3.8 worded "invalid syntax" ("invalid
  syntax", "invalid syntax. Perhaps you forgot a comma?", "expected ':'"), "unterminated string
  literal" and "expected 'except' or 'finally' block".
- `line`: every other syntax error (at its reported line) and runtime errors at the deepest
  traceback frame in the candidate's own code (`ErrorInfo.line`), failing imports included.
- `none`: wrong answers, TabError and "unindent does not match", an unterminated triple-quoted
  string, duplicate arguments, `import *` inside a function, errors whose traceback never enters
  the completion (and syntax errors located outside it, e.g. null bytes), `no_result`, passes.

The "last code line" is the completion's last line holding something other than blanks or a
comment, so trailing blank lines, comments and a missing final newline do not move it. Lines are
counted in the code the job ran from `completion_start` on (`ErrorInfo.line`); `to_raw` carries a
span back into the raw model output (chat replies whose code was extracted), and `token_rewards`
turns spans into per-token rewards: a token is penalised when its character span overlaps the
line's span (the line's characters without its line break), so a token that straddles a line
break ("\\n    ", ")\\n") is charged to each line it writes characters of, and one that is only
the break itself to none.

Importing this module imports neither torch nor the sandbox.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from execrl.data import DataError
from execrl.types import ErrorInfo, ExecutionResult, Status

if TYPE_CHECKING:
    import torch

__all__ = [
    "KINDS",
    "PENALTY",
    "Penalty",
    "RLTFReward",
    "Scope",
    "Scored",
    "adaptive",
    "classify",
    "coarse",
    "line_span",
    "locate",
    "penalty",
    "rollout_token_rewards",
    "scalar",
    "to_raw",
    "token_offsets",
    "token_rewards",
    "verdict",
]

Scope = Literal["global", "line", "none"]
PENALTY = 0.3
"""The reward subtracted from each token in a penalty's scope (the official code's 0.3)."""

_COARSE = {
    Status.PASSED: 1.0,
    Status.FAILED: -0.3,
    Status.SYNTAX_ERROR: -1.0,
    Status.RUNTIME_ERROR: -0.6,
    Status.TIMEOUT: -0.6,
    Status.MEMORY_EXCEEDED: -0.6,
    Status.OUTPUT_EXCEEDED: -0.6,
    Status.NO_RESULT: -0.6,
}
_CRASHES = frozenset(
    {Status.RUNTIME_ERROR, Status.TIMEOUT, Status.MEMORY_EXCEEDED, Status.OUTPUT_EXCEEDED, Status.NO_RESULT}
)
_LIMITS = frozenset({Status.TIMEOUT, Status.MEMORY_EXCEEDED, Status.OUTPUT_EXCEEDED})


def verdict(result: ExecutionResult) -> tuple[Status, ErrorInfo | None]:
    """The status and error the rewards read (see the module docstring): the job's, or for a
    `failed` job the first test that crashed instead of answering; `sandbox_error` when any test
    ended in one (a pass ratio with a test our side lost would be wrong)."""
    if any(test.status is Status.SANDBOX_ERROR for test in result.tests):
        return Status.SANDBOX_ERROR, None
    if result.status is Status.FAILED:
        for test in result.tests:
            if test.status in _CRASHES:
                return test.status, test.error
    return result.status, result.error


def coarse(result: ExecutionResult) -> float | None:
    """RLTF's coarse feedback: -1.0, -0.6, -0.3 or +1.0; None after a sandbox_error."""
    return _COARSE.get(verdict(result)[0])


def adaptive(result: ExecutionResult) -> float | None:
    """Coarse, except that a program that ran and failed some tests gets -0.3 + 1.3 * pass ratio."""
    status, _ = verdict(result)
    if status is Status.FAILED and result.tests_total:
        return -0.3 + 1.3 * result.tests_passed / result.tests_total
    return _COARSE.get(status)


# ---------------------------------------------------------------------------------------------
# Fine-grained feedback: which tokens a failure is blamed on.

_NEVER_CLOSED = re.compile(r"^'[(\[{]' was never closed")
_WHITESPACE = ("inconsistent use of tabs and spaces", "unindent does not match any outer indentation level")
_IGNORED = (
    "unterminated triple-quoted string literal",  # 3.10+
    "EOF while scanning triple-quoted string literal",  # 3.8, 3.9
    "duplicate argument",
    "import * only allowed at module level",
)
_EARLY_END_ON_LAST_LINE = (
    "invalid syntax",  # also "invalid syntax. Perhaps you forgot a comma?" (3.8: "invalid syntax")
    "expected ':'",  # 3.8: "invalid syntax"
    "unterminated string literal",  # 3.8, 3.9: "EOL while scanning string literal"
    "EOL while scanning string literal",
    "expected 'except' or 'finally' block",  # 3.8: "unexpected EOF while parsing"
)
_COMMENT = re.compile(r"#[^'\"]*$")
_LAYOUT = frozenset(
    {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT}
)


def _opens_block(text: str) -> bool:
    """Whether a line of code ends with the ":" of a block header (a trailing comment aside)."""
    try:
        tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(text.strip() + "\n").readline)
            if t.type not in _LAYOUT
        ]
    except (tokenize.TokenError, SyntaxError):  # e.g. an unterminated string: fall back on text
        return _COMMENT.sub("", text).rstrip().endswith(":")
    return bool(tokens) and tokens[-1].string == ":"


@dataclass(frozen=True)
class Penalty:
    """A fine-grained penalty. `line` is 1-based and `start`/`end` are character offsets in the
    text the penalty refers to (the completion; after `to_raw`, the raw output); all None unless
    `scope` is "line". `value` is subtracted from each token in scope (0 when `scope` is "none").
    `rule` names the rule that decided the scope."""

    scope: Scope
    rule: str
    line: int | None = None  # 1-based
    start: int | None = None
    end: int | None = None
    value: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "line": self.line,
            "start": self.start,
            "end": self.end,
            "value": self.value,
        }


def _code_lines(code: str) -> list[str]:
    return code.split("\n")


def _last_code_line(lines: list[str]) -> int:
    """1-based number of the last line holding code (not blank, not only a comment); 0 if none."""
    for i in range(len(lines), 0, -1):
        text = lines[i - 1].strip()
        if text and not text.startswith("#"):
            return i
    return 0


def classify(status: Status, error: ErrorInfo | None, code: str) -> tuple[Scope, int | None, str]:
    """(scope, line in `code` or None, rule) for a verdict. `code` is the text `error.line`
    counts in (the job's program from `completion_start` on)."""
    if status in _LIMITS:
        return "global", None, status.value
    if status is Status.SYNTAX_ERROR:
        return _syntax(error, code)
    if status is Status.RUNTIME_ERROR:
        if error is not None and error.type == "RecursionError":
            return "global", None, "RecursionError"
        if error is None or error.line is None:
            return "none", None, "outside the completion"
        return "line", error.line, "runtime error"
    if status is Status.FAILED:
        return "none", None, "wrong answer"
    if status is Status.PASSED:
        return "none", None, "passed"
    if status is Status.NO_RESULT:
        return "none", None, "no_result"
    raise ValueError(f"no fine-grained feedback for {status.value}")


def _syntax(error: ErrorInfo | None, code: str) -> tuple[Scope, int | None, str]:
    if error is None:
        return "none", None, "outside the completion"
    kind, msg, line = error.type, error.message, error.line
    if kind in ("RecursionError", "MemoryError"):  # too deeply nested to compile
        return "global", None, "too complex to compile"
    if kind == "TabError" or msg.startswith(_WHITESPACE):
        return "none", None, "whitespace"
    if msg.startswith(_IGNORED):
        return "none", None, msg.split(" (")[0].split(" '")[0]
    if _NEVER_CLOSED.match(msg) or msg.startswith("unexpected EOF while parsing"):
        return "global", None, "unexpected end"
    if line is None:
        return "none", None, "outside the completion"
    lines = _code_lines(code)
    last = _last_code_line(lines)
    if msg.startswith("expected an indented block"):
        # 3.10+ report the header itself when nothing follows it, else the next line; 3.9 also
        # words the message without "after ..." — so decide on the text, not on the wording.
        header = 0 < line <= len(lines) and _opens_block(lines[line - 1])
        if line > last or (line == last and header):
            return "global", None, "unexpected end"
        return "line", line, "syntax error"
    if msg.startswith(_EARLY_END_ON_LAST_LINE) and line >= last:
        return "global", None, "unexpected end"
    return "line", line, "syntax error"


def line_span(code: str, line: int) -> tuple[int, int]:
    """Character span of 1-based `line` in `code` without its line break (lines end at "\\n"; a
    "\\r" before it is left out too). A line past the end is taken as the last line."""
    starts = [0, *(m.end() for m in re.finditer("\n", code))]
    if len(starts) > 1 and starts[-1] == len(code):
        starts.pop()  # the text ends with a line break: no empty line after it
    start = starts[min(max(line, 1), len(starts)) - 1]
    end = code.find("\n", start)
    end = len(code) if end < 0 else end
    if end > start and code[end - 1] == "\r":
        end -= 1
    return start, end


def penalty(result: ExecutionResult, code: str) -> Penalty | None:
    """The fine-grained penalty of one result, located in `code` (the job's program from
    `completion_start` on); None after a sandbox_error (no reward at all)."""
    status, error = verdict(result)
    if status is Status.SANDBOX_ERROR:
        return None
    scope, line, rule = classify(status, error, code)
    if scope == "none":
        return Penalty("none", rule)
    if scope == "global" or line is None:
        return Penalty("global", rule, value=PENALTY)
    start, end = line_span(code, line)
    return Penalty("line", rule, line, start, end, PENALTY)


# ---------------------------------------------------------------------------------------------
# From the code the job ran back to the text the model wrote, and to its tokens.


def _lines_with_offsets(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    for piece in text.split("\n"):
        out.append((pos, piece))
        pos += len(piece) + 1
    return out


def _indent(text: str) -> str:
    return text[: len(text) - len(text.lstrip())]


def to_raw(raw: str, code: str, start: int, end: int) -> tuple[int, int] | None:
    """Carry a span within one line of `code` to the same characters in `raw`, the output `code`
    was taken from; None when that line is not in `raw`.

    When `raw` starts with `code` (a completion cut at a stop string) offsets stay. Otherwise
    (code extracted from a chat reply: lines sliced out of fenced blocks, dedented, prose and
    example calls dropped, maybe a line added) the lines of `code` are matched in order to lines
    of `raw` that hold them behind more indentation (trailing blanks aside), greedily from each
    possible first pair; the run that matches the most lines in the fewest lines of `raw` wins
    (a reply often repeats a function it then corrects)."""
    if raw.startswith(code):
        return start, end
    code_lines = _lines_with_offsets(code)
    raw_lines = _lines_with_offsets(raw)
    by_body: dict[str, list[int]] = {}
    for q, (_, text) in enumerate(raw_lines):
        by_body.setdefault(text.strip(), []).append(q)
    # for each non-blank line k of `code`: the lines of `raw` holding it, in order
    where = {
        k: [q for q in by_body.get(text.strip(), []) if _indent(raw_lines[q][1]).endswith(_indent(text))]
        for k, (_, text) in enumerate(code_lines)
        if text.strip()
    }
    order = sorted(where)
    best: dict[int, int] = {}
    best_key = (0, 0)
    for n, k0 in enumerate(order):
        for r0 in where[k0]:
            match, r = {k0: r0}, r0 + 1
            for k in order[n + 1 :]:
                hit = next((q for q in where[k] if q >= r), None)
                if hit is not None:  # else a line the model did not write (or not here): skip it
                    match[k], r = hit, hit + 1
            key = (len(match), r0 - r)  # most lines matched, then the most compact run
            if key > best_key:
                best, best_key = match, key
    target = next(
        (k for k, (pos, text) in enumerate(code_lines) if pos + len(text) >= start), len(code_lines) - 1
    )
    if target not in best:
        return None
    q = best[target]
    shift = len(_indent(raw_lines[q][1])) - len(_indent(code_lines[target][1]))
    base = raw_lines[q][0] + shift - code_lines[target][0]
    limit = raw_lines[q][0] + len(raw_lines[q][1])
    return min(start + base, limit), min(end + base, limit)


def token_offsets(tokenizer: Any, ids: Sequence[int]) -> list[tuple[int, int]]:
    """Character span of each sampled token in `tokenizer.decode(ids, skip_special_tokens=True)`
    (what the rollout's text is): token i covers what decoding `ids[: i + 1]` adds. A byte-level
    token that ends inside a character covers that character, as does the token completing it
    (so both are charged with it); special tokens cover nothing. Unlike the offset mapping of
    re-tokenized text, these are the spans of the ids the policy sampled, and never trimmed."""
    spans: list[tuple[int, int]] = []
    done = 0  # characters complete so far
    for i in range(len(ids)):
        text = tokenizer.decode(list(ids[: i + 1]), skip_special_tokens=True)
        complete = len(text.rstrip("\ufffd"))
        partial = complete < len(text)
        end = max(done, complete)
        spans.append((min(done, end), end + 1 if partial else end))
        done = end
    return spans


def _overlaps(a: int, z: int, start: int, end: int) -> bool:
    if start == end:  # an empty line: the token that writes its position
        return a <= start < z
    return a < end and start < z and a < z


def token_rewards(
    penalties: Sequence[Penalty | None], offsets: Sequence[Sequence[tuple[int, int]]], mask: torch.Tensor
) -> torch.Tensor:
    """(B, T) float rewards to add per token: -value on each row's tokens in scope, 0 elsewhere.

    `penalties[b]` refers to character offsets of the text that `offsets[b]` (one (start, end)
    per completion token, as many as row b's tokens or more) are spans of; `mask` is the
    completion mask (B, T). Global: every token with mask 1; line: the tokens with mask 1 whose
    span overlaps [start, end); none, None (sandbox error) or a line that could not be located
    (start None): nothing."""
    import torch

    out = torch.zeros(mask.shape, dtype=torch.float32)
    for b, p in enumerate(penalties):
        if p is None or p.scope == "none" or p.value == 0:
            continue
        if p.scope == "global":
            out[b] = -p.value * (mask[b] != 0).float()
            continue
        if p.start is None or p.end is None:
            continue
        for t, (a, z) in enumerate(offsets[b][: mask.shape[1]]):
            if mask[b, t] and _overlaps(a, z, p.start, p.end):
                out[b, t] = -p.value
    return out


def rollout_token_rewards(
    tokenizer: Any,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    penalties: Sequence[Penalty | None],
) -> torch.Tensor:
    """`token_rewards` for a rollout (trainers/rollout.py: right-padded (B, T) ids and mask, whose
    texts are what `RLTFReward.score` located the penalties in). Offsets are `token_offsets` of
    each row's sampled ids, decoded only for rows with a line penalty (O(T^2) decoding)."""
    offsets: list[list[tuple[int, int]]] = []
    for b, p in enumerate(penalties):
        if p is not None and p.scope == "line" and p.start is not None:
            n = int(completion_mask[b].sum())
            offsets.append(token_offsets(tokenizer, completion_ids[b, :n].tolist()))
        else:
            offsets.append([])
    return token_rewards(penalties, offsets, completion_mask)


# ---------------------------------------------------------------------------------------------
# The reward function.

KINDS = ("coarse", "adaptive")


@dataclass(frozen=True)
class Scored:
    """One output's scalar reward (None after a sandbox_error), its penalty located in the raw
    output (None after a sandbox_error), its result, and the code the job ran (from
    `completion_start` on)."""

    reward: float | None
    penalty: Penalty | None
    result: ExecutionResult
    code: str


def scalar(result: ExecutionResult, kind: str) -> float | None:
    if kind == "coarse":
        return coarse(result)
    if kind == "adaptive":
        return adaptive(result)
    raise ValueError(f"RLTF reward kind must be one of {', '.join(KINDS)}, got {kind!r}")


class RLTFReward:
    """RLTF's feedback as a TRL-style reward function: `(completions, **columns)` returns the
    scalar (`kind`: coarse or adaptive) per completion; `score` also returns each `Penalty`,
    located in the raw output text, for `token_rewards`. The other arguments are
    `ExecutionReward`'s (benchmark, data, problems, limits, executor, chat, workers), which runs
    the jobs. `fine=False` keeps the penalties in `score` but gives no token rewards."""

    def __init__(
        self,
        benchmark: str,
        *,
        kind: str = "adaptive",
        tokenizer: Any = None,
        fine: bool = True,
        **options: Any,
    ) -> None:
        if kind not in KINDS:
            raise DataError(f"RLTF reward kind must be one of {', '.join(KINDS)}, got {kind!r}")
        from execrl.rewards.execution import ExecutionReward

        self.kind = kind
        self.tokenizer = tokenizer
        self.fine = fine
        self.execution = ExecutionReward(benchmark, **options)
        self.__name__ = f"rltf_{kind}"  # TRL names reward columns after the function

    def score(self, task_ids: Sequence[str], outputs: Sequence[str], progress: Any = None) -> list[Scored]:
        """Run each raw model output against its task's tests; results in the same order.
        `progress(result)` is called as each program finishes."""
        scored = []
        for (job, result), text in zip(self.execution.run(task_ids, outputs, progress), outputs):
            code = job.program[job.completion_start :]
            p = locate(penalty(result, code), code, text)
            scored.append(Scored(scalar(result, self.kind), p, result, code))
        return scored

    def __call__(
        self, completions: Sequence[Any], task_id: Sequence[str] | None = None, **columns: Any
    ) -> list[float | None]:
        if task_id is None:
            raise DataError('the dataset needs a "task_id" column naming each completion\'s task')
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        return [s.reward for s in self.score(task_id, texts)]

    def token_rewards(self, scored: Sequence[Any], rollout: Any, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) line penalties of `scored` (this reward's `score` of `rollout.texts`) on the
        rollout's sampled ids: the `TokenRewards` of trainers/rewarding.py. Needs `tokenizer`.
        Zeros with `fine=False` (the scalar alone, as in RLTF's ablations)."""
        import torch

        if not self.fine:
            return torch.zeros(mask.shape, dtype=torch.float32)
        if self.tokenizer is None:
            raise ValueError("RLTFReward(tokenizer=...) is needed for token rewards")
        penalties = [getattr(s, "penalty", None) for s in scored]
        return rollout_token_rewards(self.tokenizer, rollout.completion_ids, mask, penalties)

    def close(self) -> None:
        self.execution.close()


def locate(p: Penalty | None, code: str, raw: str) -> Penalty | None:
    """`p` (located in `code`) carried into `raw` (see `to_raw`): its span and line then count in
    `raw`. A line that is not in `raw` keeps its scope and value with no line and no span, so no
    token is charged."""
    if p is None or p.scope != "line" or p.start is None or p.end is None:
        return p
    if raw == code:
        return p
    span = to_raw(raw, code, p.start, p.end)
    if span is None:
        return Penalty(p.scope, p.rule, None, None, None, p.value)
    return Penalty(p.scope, p.rule, raw.count("\n", 0, span[0]) + 1, span[0], span[1], p.value)
