"""Text and code similarity of a prediction to a reference: ROUGE-L F1 and CodeBLEU.

Both are the reference packages' numbers, not re-implementations (the `rlaif` extra):

* `rouge_l(prediction, reference)`: the `rougeL` F-measure of `rouge_score.rouge_scorer.RougeScorer`
  with its defaults (no stemming; its tokenizer lower-cases and splits on non-alphanumerics, so
  `pipeline('ner')` is the tokens `pipeline ner`).
* `codebleu(prediction, reference)`: `codebleu.calc_codebleu([reference], [prediction], "python")`
  with the default weights (0.25 each for n-gram, weighted n-gram, syntax and data-flow match), its
  `codebleu` value. On code without data flow (a single call: no variable is defined and then
  used) the package scores data-flow match 0 and warns; we keep its number and silence the warning.
  Its n-grams are whitespace-separated words, so a one-line call is a handful of tokens and an
  exact copy of it scores well below 1 (0.64 for a typical Hugging Face `pipeline(...)` call).

Which strings are compared is the caller's choice (`execrl.eval.api_metrics` documents its own).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

__all__ = ["codebleu", "rouge_l"]


def _missing(e: ImportError) -> ImportError:
    return ImportError(f"{e}; ROUGE-L and CodeBLEU need the rlaif extra: pip install 'execrl[rlaif]'")


@functools.lru_cache(maxsize=1)
def _rouge() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise _missing(e) from None
    return rouge_scorer.RougeScorer(["rougeL"])


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of `prediction` against `reference` (rouge-score's `rougeL`)."""
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


class _NoDataflowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "data-flow" not in record.getMessage()


def codebleu(prediction: str, reference: str) -> float:
    """CodeBLEU of `prediction` against `reference`, Python, default weights (see module docstring)."""
    try:
        from codebleu import calc_codebleu
    except ImportError as e:
        raise _missing(e) from None
    root = logging.getLogger()
    quiet = _NoDataflowWarning()
    root.addFilter(quiet)
    try:
        return float(calc_codebleu([reference], [prediction], lang="python")["codebleu"])
    finally:
        root.removeFilter(quiet)
