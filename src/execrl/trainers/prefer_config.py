"""`PreferConfig`: every setting of `execrl prefer` (PLUM's preference rounds), checked field by field.

Each field is a flag (`--samples-per-prompt`) and a key of `--config cfg.yaml`; flags override the
file. A bad value is a `DataError` naming the field, raised before anything is loaded or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from execrl.data.jsonl import DataError, PathLike
from execrl.trainers.config import (
    at_least_one,
    field_error,
    load_config,
    not_negative,
    one_of,
    reporters,
    require,
    sampling_checks,
)

__all__ = ["PREFER_ALGOS", "REFERENCES", "PreferConfig"]

PREFER_ALGOS = ("dpo", "ipo", "kto")
REFERENCES = ("round", "start")


@dataclass
class PreferConfig:
    """`execrl prefer`: every field is also a flag and a key of `--config cfg.yaml`."""

    model: str = ""
    """Hugging Face causal LM directory (model + tokenizer) to start from (PLUM: the SFT model)."""
    out: str = ""
    """Output directory: log.jsonl, eval.jsonl, rounds.jsonl, round-R.pt, checkpoint-N/, the final model."""
    algo: str = "kto"
    """dpo, ipo (pairs: a passing and a failing program of one prompt) or kto (every labelled program)."""
    benchmark: str = "builtin"
    """Benchmark whose tasks are the prompts (and, with ground_truth_tests, whose tests label them)."""
    data: str | None = None
    """The benchmark's data file (default: the copy it ships or finds)."""
    tests: str | None = None
    """`execrl tests validate` output (V.jsonl): the rows marked valid label the samples. Required
    unless ground_truth_tests; tasks without a valid test are not sampled."""
    ground_truth_tests: bool = False
    """Label with the benchmark's own tests instead of `tests` (the synthesized-vs-ground-truth
    comparison)."""
    samples: str | None = None
    """Off-policy: JSONL of {"task_id", "completion"} (another model's samples) to label and train
    on instead of sampling from the policy; each round takes the rows of its prompts."""
    split: str | None = "train"
    """Train on tasks whose metadata "split" is this (none: every task)."""
    eval_split: str | None = "test"
    """Held-out tasks for greedy pass@1 before the first round and after each (none: no evaluation)."""
    eval_limit: int = 0
    """Evaluate on the first this many held-out tasks (0: all)."""
    eval_every: int = 1
    """Evaluate after every this many rounds, and before the first and after the last (0: only those)."""
    chat: bool = False
    """Chat prompts through the tokenizer's template (default: completion-style prompts)."""
    rounds: int = 3
    """Sample -> label -> train rounds; each samples from the policy the previous one left."""
    prompts_per_round: int = 0
    """Prompts per round, consecutive slices of a seeded shuffle of the tasks (0: every task each round)."""
    samples_per_prompt: int = 8
    """Programs sampled per prompt (off-policy: at most this many of the prompt's rows are used)."""
    max_pairs_per_prompt: int = 4
    """DPO/IPO: at most this many (passing, failing) pairs per prompt, drawn at random."""
    max_new_tokens: int = 256
    temperature: float = 1.0
    """Sampling temperature of the round's programs (the losses score the untempered model)."""
    top_p: float = 1.0
    timeout: float = 1.0
    """CPU seconds per test for the executed programs."""
    workers: int = 0
    """Sandbox workers (0: the CPU cores)."""
    reference: str = "round"
    """The frozen reference of the losses: round (the policy at the round's start, PLUM's online
    iterations) or start (the model this run started from, e.g. the SFT model, in every round)."""
    beta: float = 0.1
    """DPO/IPO/KTO temperature of the implicit reward beta * log(pi / pi_ref)."""
    label_smoothing: float = 0.0
    """DPO: conservative DPO's label-flip probability in [0, 0.5)."""
    desirable_weight: float = 1.0
    """KTO: weight of the passing programs' losses."""
    undesirable_weight: float = 1.0
    """KTO: weight of the failing programs' losses."""
    kto_balance: bool = False
    """KTO: each round, raise the desirable weight to undesirable_weight x failing / passing
    examples when that is larger, so that weight x count of the passing programs is at least that
    of the failing ones, as KTO's authors recommend (a ratio in [1, 4/3]); the weight used is
    logged per round (`desirable_weight` in rounds.jsonl)."""
    sft_coef: float = 0.0
    """Weight of the passing programs' negative log-likelihood (mean over their tokens; KTO: the
    desirable programs, DPO/IPO: the chosen ones), added to the loss as DPO+NLL / RPO do (TRL's
    `rpo_alpha`): keeps the likelihood of good programs from falling with that of the bad ones.
    0: off."""
    epochs: int = 1
    """Passes over each round's pairs (or KTO examples)."""
    batch_size: int = 16
    """Pairs (or KTO examples) per optimizer step; KTO's KL estimate pairs within a batch."""
    micro_batch_size: int = 16
    """Sequences per forward/backward pass (a pair is two)."""
    lr: float = 1e-6
    warmup_steps: int = 0
    """The lr rises linearly over this many optimizer steps, then stays constant."""
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    """Clip the gradient's global norm to this; 0 disables clipping."""
    max_steps: int = 0
    """Stop after this many optimizer steps in all (0: no limit); a checkpoint is saved where it
    stops, so `resume` with a larger budget continues the same run."""
    max_minutes: float = 0.0
    """Stop after this many minutes of sampling, labelling and training (evaluation excluded); 0: no
    limit. Checked before each round and each optimizer step (a round's sampling can overrun it); a
    checkpoint is saved where it stops."""
    lora_r: int = 0
    """LoRA rank (0: train all weights); needs `pip install execrl[lora]` (peft)."""
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    bf16: bool = False
    """bfloat16 mixed precision (GPU only)."""
    seed: int = 0
    """Seeds prompts, sampling, pairing and batch order: same seed, same run."""
    save_every: int = 0
    """Save out/checkpoint-N every this many optimizer steps (0: only where a budget stops the run)."""
    resume: bool = False
    """Continue from the latest out/checkpoint-N (mid-round included)."""
    report_to: str = "none"
    """Metric sinks besides log.jsonl: tensorboard, wandb, none (comma-separated)."""

    def __post_init__(self) -> None:
        bad = partial(field_error, self)
        require(self, "model", "out")
        one_of(self, "algo", PREFER_ALGOS)
        one_of(self, "reference", REFERENCES)
        if not self.tests and not self.ground_truth_tests:
            raise DataError("config: field 'tests' is required (a V.jsonl), unless ground_truth_tests is set")
        if self.tests and self.ground_truth_tests:
            raise bad("tests", "must not be given with ground_truth_tests (which tests label the samples?)")
        at_least_one(self, "rounds", "samples_per_prompt", "max_pairs_per_prompt", "max_new_tokens", "epochs",
                     "batch_size", "micro_batch_size", "lora_alpha")  # fmt: skip
        not_negative(self, "prompts_per_round", "eval_limit", "eval_every", "workers", "warmup_steps",
                     "weight_decay", "max_grad_norm", "max_steps", "max_minutes", "lora_r", "save_every",
                     "desirable_weight", "undesirable_weight", "sft_coef")  # fmt: skip
        if self.algo == "kto" and self.batch_size < 2:
            raise bad("batch_size", "must be at least 2 for kto (its KL estimate pairs examples of a batch)")
        sampling_checks(self)
        if not self.beta > 0:
            raise bad("beta", "must be positive")
        if not 0 <= self.label_smoothing < 0.5:
            raise bad("label_smoothing", "must be in [0, 0.5)")

    @property
    def reporters(self) -> list[str]:
        return reporters(self.report_to)

    @classmethod
    def load(cls, path: PathLike | None = None, overrides: dict[str, Any] | None = None) -> PreferConfig:
        """Fields from a YAML file, then `overrides` (unknown keys and bad values name the field)."""
        return load_config(cls, path, overrides)
