"""Seeds derived from (base seed, names), and a counter-based RNG for sampling.

Every random draw in degrader comes from one of these: a `torch.Generator` seeded with
`derive_seed(...)`, or `uniform_from_counter`, which hashes (row seed, step, token id) with
integer arithmetic that is exact on every device. Nothing reads the global RNG state.
"""

from __future__ import annotations

import hashlib

import torch

_MASK32 = 0xFFFFFFFF


def repetition_seed(seed: int, repeat_index: int) -> int:
    """The seed of repetition `repeat_index` of an experiment with base `seed`: seed + repeat_index.

    The one place this rule is written: lesions, sampling streams and the records' `seed` field use it.
    """
    return seed + repeat_index


def derive_seed(*parts: object) -> int:
    """A 63-bit seed that is a pure function of `parts` (e.g. base seed + repetition, name)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator_for(device: torch.device | str, *parts: object) -> torch.Generator:
    """A fresh `torch.Generator` on `device`, seeded with `derive_seed(*parts)`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(*parts))
    return generator


def _mul32(x: torch.Tensor, constant: int) -> torch.Tensor:
    # (x * constant) mod 2**32 without int64 overflow: split the constant in 16-bit halves.
    low = x * (constant & 0xFFFF)
    high = ((x * (constant >> 16)) & 0xFFFF) << 16
    return (low + high) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 (C. Wellons) on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def uniform_from_counter(row_seeds: torch.Tensor, step: int | torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """Uniform floats in (0, 1), shape of `token_ids` [B, K], one stream per row seed [B].

    u = (hash(row_seed, step, token_id) >> 8 + 0.5) / 2**24: a pure function of its three
    inputs, so a row draws the same numbers whatever batch it is in and on whatever device.
    `step` may be a tensor, so a compiled decode step does not recompile at every step.
    """
    low, high = row_seeds & _MASK32, (row_seeds >> 32) & _MASK32
    key = hash32(hash32(low) ^ high)
    key = hash32(key ^ ((step * 0x9E3779B9) & _MASK32))
    bits = hash32(hash32(key[:, None] ^ token_ids) ^ 0x5BD1E995)
    return ((bits >> 8).to(torch.float32) + 0.5) / float(1 << 24)
