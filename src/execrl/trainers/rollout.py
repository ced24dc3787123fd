"""Rollouts: sample completions from the policy as token ids, and score token ids under a model.

`sample(model, tokenizer, prompts, params, generator)` returns a `Rollout`: left-padded prompt ids
(B, P) and right-padded completion ids (B, T) with masks, so that `prompt + completion` is one
contiguous sequence per row. A trainer needs the exact sampled ids (re-tokenizing decoded text can
give other ids), so this is not `generation.hf.HFGenerator`, which returns text.

Decoding. For Llama-shaped models (`model_type` llama, mistral, qwen2, qwen3; LoRA-wrapped too) a
decoder written against the model's own modules is used: key/value buffers allocated once,
attention over the filled part only, and finished rows dropped from the batch as they end. On a
2-core CPU it samples the embedded model ~4x faster than `model.generate` (whose growing cache
is re-concatenated every token). Other architectures go through `model.generate`. The fast path is
checked against the model's own forward in the tests (same logits); either way the trainer
recomputes log-probabilities with the model's forward, so the sampler never enters a gradient.

Sampling draws from `generator` (a seeded `torch.Generator`), so a step's samples depend on the
trainer's seed and step only. A row ends at EOS (kept, masked in: the policy learns to stop), at a
stop string (the row keeps the token that completed it; the text is cut before it), or at
`max_new_tokens` (finish "length").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from execrl.generation import truncate_at_stop

__all__ = ["FAST_MODEL_TYPES", "Batch", "Rollout", "SampleParams", "micro_batches", "sample", "score", "trim"]

FAST_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


@dataclass(frozen=True)
class SampleParams:
    temperature: float = 1.0
    """0 is greedy."""
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()


@dataclass
class Rollout:
    """B sampled completions. Row b is `prompt_ids[b]` (left-padded) then `completion_ids[b]`."""

    prompt_ids: torch.Tensor  # (B, P) long, left-padded
    prompt_mask: torch.Tensor  # (B, P) long, 1 on real prompt tokens
    completion_ids: torch.Tensor  # (B, T) long, right-padded
    completion_mask: torch.Tensor  # (B, T) long, 1 on sampled tokens (EOS included)
    texts: list[str]  # each completion's text: no EOS, cut before a stop string
    finish: list[str]  # "stop" (EOS or a stop string) or "length"

    @classmethod
    def from_ids(
        cls,
        prompts: Sequence[Sequence[int]],
        completions: Sequence[Sequence[int]],
        pad: int,
        texts: list[str] | None = None,
        finish: list[str] | None = None,
    ) -> Rollout:
        """Token-id lists laid out as a rollout: prompts left-padded, completions right-padded."""
        P = max(len(p) for p in prompts)
        T = max(1, max(len(t) for t in completions))
        return cls(
            torch.tensor([[pad] * (P - len(p)) + list(p) for p in prompts], dtype=torch.long),
            torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long),
            torch.tensor([list(t) + [pad] * (T - len(t)) for t in completions], dtype=torch.long),
            torch.tensor([[1] * len(t) + [0] * (T - len(t)) for t in completions], dtype=torch.long),
            texts if texts is not None else [""] * len(prompts),
            finish if finish is not None else ["stop"] * len(prompts),
        )

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, rows: Sequence[int]) -> Rollout:
        idx = torch.tensor(list(rows), dtype=torch.long)
        return Rollout(
            self.prompt_ids[idx],
            self.prompt_mask[idx],
            self.completion_ids[idx],
            self.completion_mask[idx],
            [self.texts[i] for i in rows],
            [self.finish[i] for i in rows],
        )


@dataclass
class Batch:
    """One step's rollouts with their rewards: what every algorithm's `advantages` reads.

    Sequence-level tensors are (B,), token-level ones (B, T) like `rollout.completion_mask`.
    Rows come in groups of `group_size` samples of one prompt."""

    rollout: Rollout
    scores: torch.Tensor  # (B,) the execution reward; 0 where not valid
    valid: torch.Tensor  # (B,) 1 where the sample has a reward (no sandbox_error)
    token_rewards: torch.Tensor  # (B, T) dense rewards added per token (RLTF line penalties); 0 here
    weights: torch.Tensor  # (B,) loss weight of each sample (0 where not valid; filtration scales it)
    old_logp: torch.Tensor | None  # (B, T) under the policy that sampled; None: the update's own pass
    ref_logp: torch.Tensor | None  # (B, T) under the frozen reference (None without a KL term)
    old_values: torch.Tensor | None  # (B, T) the critic's values (PPO)
    group_size: int

    @property
    def mask(self) -> torch.Tensor:
        return self.rollout.completion_mask


def _unwrap(model: Any) -> Any:
    """The transformers model under DDP and peft wrappers."""
    model = getattr(model, "module", model)
    if hasattr(model, "get_base_model"):
        model = model.get_base_model()
    return model


def _fast_path(model: Any) -> bool:
    m = _unwrap(model)
    return (
        getattr(m.config, "model_type", None) in FAST_MODEL_TYPES
        and hasattr(m, "model")
        and hasattr(m.model, "layers")
        and hasattr(m.model, "rotary_emb")
    )


def _pick(logits: torch.Tensor, params: SampleParams, generator: torch.Generator | None) -> torch.Tensor:
    """Next token per row from (B, V) logits."""
    if params.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > params.top_p  # keep the smallest nucleus
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    # inverse CDF: one uniform per row (torch.multinomial draws one per vocabulary entry, which
    # costs as much as the model's step on a small CPU model)
    cdf = probs.cumsum(-1)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=cdf.shape[-1] - 1)


class _StopCheck:
    """Finds where a completion first contains a stop string. Decoding every row at every token
    costs as much as the model on a small CPU model, so rows are checked every `EVERY` tokens and
    once at the end, and a hit is traced back to the token that completed the stop string."""

    EVERY = 8

    def __init__(self, tokenizer: Any, stop: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]

    def _has(self, ids: list[int]) -> bool:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return any(s in text for s in self.stop)

    def cut(self, ids: list[int], since: int = 0) -> int | None:
        """The shortest prefix length of `ids` (> `since`, whose prefixes were clean) that holds a
        stop string, or None."""
        if not self.stop or len(ids) <= since or not self._has(ids):
            return None
        return next(n for n in range(since + 1, len(ids) + 1) if self._has(ids[:n]))


@torch.no_grad()
def _decode_fast(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    params: SampleParams,
    eos: set[int],
    stop: _StopCheck,
    generator: torch.Generator | None,
) -> tuple[list[list[int]], list[str]]:
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    lm = _unwrap(model)
    inner = lm.model
    cfg = lm.config
    B, P = prompt_ids.shape
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    L = P + params.max_new_tokens
    device = prompt_ids.device
    dtype = inner.embed_tokens.weight.dtype
    keys = [torch.zeros(B, kv_heads, L, head_dim, dtype=dtype, device=device) for _ in inner.layers]
    values = [torch.zeros_like(k) for k in keys]
    valid = torch.zeros(B, L, dtype=torch.bool, device=device)  # key positions a row may attend to
    valid[:, :P] = prompt_mask.bool()
    positions = (prompt_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, P)

    def forward(ids: torch.Tensor, pos: torch.Tensor, start: int) -> torch.Tensor:
        b, n = ids.shape
        h = inner.embed_tokens(ids)
        cos, sin = inner.rotary_emb(h, pos)
        end = start + n
        attn_mask = valid[:, None, None, :end]  # (b, 1, 1, end)
        if n > 1:  # prefill: causal within the block; every query sees itself (no all-masked rows)
            causal = torch.ones(n, end, dtype=torch.bool, device=device).tril(start)
            itself = torch.zeros(n, end, dtype=torch.bool, device=device)
            itself[torch.arange(n), start + torch.arange(n)] = True
            attn_mask = (attn_mask & causal) | itself
        for i, layer in enumerate(inner.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = attn.q_proj(x).view(b, n, heads, head_dim).transpose(1, 2)
            k = attn.k_proj(x).view(b, n, kv_heads, head_dim).transpose(1, 2)
            v = attn.v_proj(x).view(b, n, kv_heads, head_dim).transpose(1, 2)
            if hasattr(attn, "q_norm"):  # qwen3
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            keys[i][:, :, start:end] = k
            values[i][:, :, start:end] = v
            out = F.scaled_dot_product_attention(
                q,
                keys[i][:, :, :end],
                values[i][:, :, :end],
                attn_mask=attn_mask,
                scale=getattr(attn, "scaling", head_dim**-0.5),
                enable_gqa=kv_heads != heads,
            )
            h = h + attn.o_proj(out.transpose(1, 2).reshape(b, n, heads * head_dim))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return lm.lm_head(inner.norm(h[:, -1]))  # (b, V)

    logits = forward(prompt_ids, positions, 0)
    next_pos = positions[:, -1] + 1
    slot_row = list(range(B))  # the original row of each buffer slot
    alive = [True] * B
    tokens: list[list[int]] = [[] for _ in range(B)]
    finish = ["length"] * B
    checked = [0] * B  # per row: tokens known to hold no stop string
    for step in range(params.max_new_tokens):
        chosen = _pick(logits, params, generator)
        live = []
        for slot, t in enumerate(chosen.tolist()):
            if alive[slot]:
                r = slot_row[slot]
                tokens[r].append(t)
                if t in eos:
                    alive[slot] = False
                    finish[r] = "stop"
                else:
                    live.append(slot)
        if stop.stop and step % stop.EVERY == stop.EVERY - 1:
            for slot in live:
                r = slot_row[slot]
                n = stop.cut(tokens[r], checked[r])
                checked[r] = len(tokens[r])
                if n is not None:
                    del tokens[r][n:]
                    alive[slot] = False
                    finish[r] = "stop"
        n_alive = sum(alive)
        if n_alive == 0 or step == params.max_new_tokens - 1:
            break
        if len(alive) - n_alive >= max(1, len(alive) // 8):  # drop finished rows from the buffers
            keep = torch.tensor([s for s, a in enumerate(alive) if a], device=device)
            keys = [k.index_select(0, keep) for k in keys]
            values = [v.index_select(0, keep) for v in values]
            valid = valid.index_select(0, keep)
            chosen, next_pos = chosen.index_select(0, keep), next_pos.index_select(0, keep)
            slot_row = [slot_row[s] for s in keep.tolist()]
            alive = [True] * len(slot_row)
        valid[:, P + step] = True
        logits = forward(chosen[:, None], next_pos[:, None], P + step)
        next_pos = next_pos + 1
    for r in range(B):  # the tokens since the last check
        n = stop.cut(tokens[r], checked[r])
        if n is not None:
            del tokens[r][n:]
            finish[r] = "stop"
    return tokens, finish


@torch.no_grad()
def _decode_generate(
    model: Any,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    params: SampleParams,
    eos: set[int],
    stop: _StopCheck,
    pad: int,
    generator: torch.Generator | None,
) -> tuple[list[list[int]], list[str]]:
    """Fallback for other architectures: `generate` with the global RNG seeded from `generator`."""
    if generator is not None and params.temperature > 0:
        torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
    out = _unwrap(model).generate(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        max_new_tokens=params.max_new_tokens,
        do_sample=params.temperature > 0,
        temperature=params.temperature if params.temperature > 0 else None,
        top_p=params.top_p if params.temperature > 0 else None,
        top_k=None,
        pad_token_id=pad,
        eos_token_id=sorted(eos),
    )[:, prompt_ids.shape[1] :]
    tokens, finish = [], []
    for row in out.tolist():
        kept, end = [], "length"
        for t in row:
            kept.append(t)
            if t in eos:
                end = "stop"
                break
        n = stop.cut(kept)
        if n is not None:
            kept, end = kept[:n], "stop"
        tokens.append(kept)
        finish.append(end)
    return tokens, finish


def sample(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    params: SampleParams,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    stop_check: _StopCheck | None = None,
    progress: Callable[[int], None] | None = None,
) -> Rollout:
    """One completion per entry of `prompts` (token ids; repeat a prompt for several samples).

    `progress(n)` is called after each batch of `batch_size` prompts with the batch's size."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = {int(tokenizer.eos_token_id)}
    configured = getattr(_unwrap(model).generation_config, "eos_token_id", None)
    eos |= set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    stop = stop_check or _StopCheck(tokenizer, params.stop)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    all_tokens: list[list[int]] = []
    all_finish: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            chunk = prompts[start : start + batch_size]
            P = max(len(p) for p in chunk)
            ids = torch.tensor([[pad] * (P - len(p)) + list(p) for p in chunk], device=device)
            mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in chunk], device=device)
            if _fast_path(model):
                tokens, finish = _decode_fast(model, ids, mask, params, eos, stop, generator)
            else:
                tokens, finish = _decode_generate(model, ids, mask, params, eos, stop, pad, generator)
            all_tokens += tokens
            all_finish += finish
            if progress is not None:
                progress(len(chunk))
    finally:
        model.train(was_training)
    texts = []
    for t in all_tokens:
        body = t[:-1] if t and t[-1] in eos else t
        texts.append(truncate_at_stop(tokenizer.decode(body, skip_special_tokens=True), params.stop)[0])
    return Rollout.from_ids(prompts, all_tokens, pad, texts, all_finish)


def score(
    model: Any,
    rollout: Rollout,
    *,
    entropy: bool = False,
    hidden: bool = False,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Forward `prompt + completion` through `model` (grad follows the caller's mode).

    Returns the log-probabilities of the completion tokens (B, T) under the model's distribution
    at `temperature` (the policy that sampled them: logits / temperature), and when asked their
    entropies (B, T) and the last hidden state at the positions that predict them (B, T, H)."""
    from execrl.trainers.losses import entropy as entropy_fn
    from execrl.trainers.losses import token_logprobs

    device = next(model.parameters()).device
    ids = torch.cat([rollout.prompt_ids, rollout.completion_ids], 1).to(device)
    attention = torch.cat([rollout.prompt_mask, rollout.completion_mask], 1).to(device)
    # a finished row's padding still needs a position; it is masked out of every loss
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    P, T = rollout.prompt_ids.shape[1], rollout.completion_ids.shape[1]
    out = model(
        input_ids=ids,
        attention_mask=attention,
        position_ids=positions,
        output_hidden_states=hidden,
        logits_to_keep=T + 1,  # no logits over the prompt
    )
    logits = out.logits[:, :-1]  # position P-1+t predicts completion token t
    if temperature != 1.0:
        logits = logits / temperature
    logp = token_logprobs(logits, ids[:, P:])
    ent = entropy_fn(logits) if entropy else None  # differentiable: an entropy bonus needs it
    states = out.hidden_states[-1][:, P - 1 : -1] if hidden else None
    return logp, ent, states


def trim(r: Rollout) -> Rollout:
    """The rows with the padding columns that no row uses dropped."""
    keep_p = int(r.prompt_mask.sum(-1).max())
    keep_t = max(1, int(r.completion_mask.sum(-1).max()))
    return Rollout(
        r.prompt_ids[:, -keep_p:],
        r.prompt_mask[:, -keep_p:],
        r.completion_ids[:, :keep_t],
        r.completion_mask[:, :keep_t],
        r.texts,
        r.finish,
    )


def micro_batches(r: Rollout, rows: list[int], size: int) -> list[list[int]]:
    """`rows` in groups of at most `size`, rows of similar total length together (less padding)."""
    lengths = (r.prompt_mask.sum(-1) + r.completion_mask.sum(-1)).tolist()
    ordered = sorted(rows, key=lambda i: lengths[i])
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]
