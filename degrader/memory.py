"""Memory arithmetic of a model from its config alone: weights, KV cache per token, batch size."""

from __future__ import annotations

from dataclasses import dataclass

import torch

HEADROOM = 0.8  # share of free GPU memory that batches and per-repetition copies may take
DATASHEET_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12}  # bytes/s of HBM, by a part of the GPU's name


def datasheet_bandwidth(device_name: str) -> float:
    """The memory bandwidth of a GPU named `device_name` (an H100's when it is not in DATASHEET_BANDWIDTH)."""
    return next((bw for key, bw in DATASHEET_BANDWIDTH.items() if key in device_name), DATASHEET_BANDWIDTH["H100"])


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one actor needs on its device for a batch of sequences."""

    weights: int
    kv_cache: int
    logits: int
    activations: int

    @property
    def total(self) -> int:
        """All of it, in bytes."""
        return self.weights + self.kv_cache + self.logits + self.activations


def meta_model(config):
    """The architecture on the meta device: shapes and names, no weights allocated."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto = AutoModelForImageTextToText if getattr(config, "vision_config", None) is not None else AutoModelForCausalLM
    with torch.device("meta"):
        return auto.from_config(config)


def count_parameters(config) -> int:
    """Parameters of the architecture, counted on the meta device (no weights are allocated)."""
    return sum(p.numel() for p in meta_model(config).parameters())


def group_bytes(config, dtype: torch.dtype, group: str) -> int:
    """Bytes of one copy of parameter group `group`: what each rep-batched repetition adds."""
    from degrader.groups import resolve_group

    return sum(target.tensor.numel() * dtype.itemsize for target in resolve_group(meta_model(config), group))


def kv_bytes_per_token(config, dtype_bytes: int) -> int:
    """2 (K and V) x layers x kv heads x head dim x bytes: the cache cost of one token of one sequence."""
    text = getattr(config, "text_config", config)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * dtype_bytes


def _per_batch(config, size: int, batch: int, sequence: int, prefill: int | None = None,
               image: bool = False) -> dict[str, int]:
    """The KV cache holds `sequence` tokens per row; activations peak in the prefill pass over `prefill` tokens
    (the prompt), not over the whole sequence: each decode step has one token per row. None: the whole sequence.
    `image`: each row's picture also goes through the vision tower first: per patch its MLP's widest output and
    the GELU of it (2 x intermediate) and the residual stream with its normed copy (2 x hidden); 5-7 % over the
    peaks measured on an H100 at 120 and 280 rows (tests/degrader/test_memory.py)."""
    text = getattr(config, "text_config", config)
    activations = 4 * batch * min(prefill or sequence, sequence) * max(text.hidden_size, text.intermediate_size)
    vision = getattr(config, "vision_config", None)
    sizes = [getattr(vision, name, None) for name in ("image_size", "patch_size", "hidden_size", "intermediate_size")]
    if image and None not in sizes:  # a SigLIP-like tower (Gemma 3's); another kind is not counted
        image_size, patch_size, hidden, intermediate = sizes
        activations = max(activations, 2 * batch * (image_size // patch_size) ** 2 * (hidden + intermediate))
    return {"kv_cache": kv_bytes_per_token(config, size) * batch * sequence,
            "logits": 4 * batch * text.vocab_size * 2,
            "activations": activations * size}


def estimate(config, dtype: torch.dtype, batch: int, sequence: int, prefill: int | None = None,
             image: bool = False) -> MemoryEstimate:
    """Weights + KV cache of `batch` sequences of `sequence` tokens + float32 logits + activations of a prefill of
    `prefill` tokens (None: of the whole sequence, an upper bound), or of the vision tower for `image` rows."""
    return MemoryEstimate(weights=count_parameters(config) * dtype.itemsize,
                          **_per_batch(config, dtype.itemsize, batch, sequence, prefill, image))


def batch_bytes(config, dtype: torch.dtype, units: int, sequence: int, rows_per_unit: int, unit_bytes: int,
                prefill: int | None = None, image: bool = False) -> int:
    """Bytes of one rep-batched batch of `units` units of `rows_per_unit` sequences each: the estimate of all its
    rows + units x `unit_bytes` (a unit's copy of the group) when units > 1; one unit degrades the weights in place."""
    rows = estimate(config, dtype, units * rows_per_unit, sequence, prefill, image)
    return rows.total + (units * unit_bytes if units > 1 else 0)


def max_batch(config, dtype: torch.dtype, free_bytes: int, sequence: int, headroom: float = HEADROOM,
              prefill: int | None = None, image: bool = False) -> int:
    """How many sequences of `sequence` tokens (`prefill` of them the prompt, with a picture for `image`) fit in
    `headroom` of `free_bytes` (weights already loaded)."""
    return max_units(config, dtype, free_bytes, sequence, rows_per_unit=1, unit_bytes=0, headroom=headroom,
                     prefill=prefill, image=image)


def max_units(config, dtype: torch.dtype, free_bytes: int, sequence: int, rows_per_unit: int, unit_bytes: int,
              headroom: float = HEADROOM, prefill: int | None = None, image: bool = False) -> int:
    """How many units fit in `headroom` of `free_bytes` when each adds `rows_per_unit` sequences (of `sequence`
    tokens, `prefill` of them the prompt, with a picture for `image`) and `unit_bytes`."""
    per_unit = unit_bytes + sum(_per_batch(config, dtype.itemsize, rows_per_unit, sequence, prefill,
                                           image).values())
    return int(int(headroom * free_bytes) // per_unit)


def planned_units(n_units: int, requested: int, fits: int) -> int:
    """Units per batch at most: `requested` (0 = as many as fit) capped by what `fits` and by `n_units`.

    How many a batch then holds is the driver's choice (`actors.driver.batch_sizes`)."""
    return max(1, min(fits, requested or n_units, n_units))
