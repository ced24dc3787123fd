"""Evaluation metrics over sandbox results (pass@k)."""

from execrl.eval.passk import estimate_pass_at_k, pass_at_k

__all__ = ["estimate_pass_at_k", "pass_at_k"]
