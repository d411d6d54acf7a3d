"""Decode attention without copying the KV cache per query head.

Gemma 3 has fewer key/value heads than query heads (grouped-query attention). transformers' SDPA path
under torch.compile repeats every cached key and value once per query head of its group
(`repeat_kv`) at every decode step: for batch 38 and a 414-token cache that is about 0.3 GB written
and read again per layer, more than the cache itself. For one query token the query heads of a group
can instead ride in the query-length dimension ([B, heads, 1, D] -> [B, kv_heads, group, D]): the
same attention, computed on the cache as it is.

On CUDA (with triton) the packed queries go to a split-KV kernel (`degrader/decode_kernel.py`) that
reads only the cache positions the mask keeps: the filled part, not the whole static cache.
"""

from __future__ import annotations

import contextlib

import torch

NAME = "degrader_sdpa"  # grouped single-token queries through SDPA
SPLIT_KV_NAME = "degrader_split_kv"  # the same, through the split-KV kernel where it can run


def grouped_decode_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                        is_causal=None, **kwargs):
    """transformers' SDPA attention, with single-token queries packed per key/value head."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = getattr(module, "num_key_value_groups", 1)
    shared_mask = attention_mask is None or attention_mask.shape[1] == 1
    if query.shape[2] != 1 or groups == 1 or not shared_mask or kwargs.get("softcap") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    batch, heads, _, dim = query.shape
    packed = query.reshape(batch, heads // groups, groups, dim)  # query head h reads key/value head h // groups
    mask = None if attention_mask is None else attention_mask[:, :, :, : key.shape[-2]]
    with _decode_backends(query.device):
        out = torch.nn.functional.scaled_dot_product_attention(packed, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(batch, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


def split_kv_decode_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                              is_causal=None, **kwargs):
    """`grouped_decode_sdpa`, with single-token queries on a boolean mask computed by the split-KV kernel.

    Selected only where the kernel can run; every test here is on shapes and dtypes, so a compiled
    decode step traces it without a graph break.
    """
    from degrader import decode_kernel

    mask_ok = attention_mask is not None and attention_mask.dtype == torch.bool and attention_mask.shape[1] == 1
    if query.shape[2] != 1 or not mask_ok or kwargs.get("softcap") is not None:
        return grouped_decode_sdpa(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                   is_causal=is_causal, **kwargs)
    batch, heads, _, dim = query.shape
    groups = getattr(module, "num_key_value_groups", 1)
    packed = query.reshape(batch, heads // groups, groups, dim)
    scale = dim ** -0.5 if scaling is None else scaling
    out = decode_kernel.split_kv_decode(packed, key, value, attention_mask[:, :, :, : key.shape[-2]], scale)
    return out.reshape(batch, heads, 1, value.shape[-1]).transpose(1, 2).contiguous(), None


def _decode_backends(device: torch.device):
    """On CUDA prefer the memory-efficient kernel: for a few queries against a long masked cache it beats
    cuDNN's (scripts/bench_attention.py: 81 vs 110 us per layer at batch 38, 620 vs 750 at 380, H100)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH], set_priority=True)


def use_grouped_decode_attention(model, split_kv: bool | None = None) -> bool:
    """Switch an SDPA model to grouped decode attention (masks stay SDPA's); False when it does not use SDPA.

    `split_kv`: through the split-KV kernel (default: where it can run on the model's device).
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from degrader import decode_kernel

    if model.config._attn_implementation not in ("sdpa", NAME, SPLIT_KV_NAME):
        return False
    for name, function in ((NAME, grouped_decode_sdpa), (SPLIT_KV_NAME, split_kv_decode_attention)):
        AttentionInterface.register(name, function)
        AttentionMaskInterface.register(name, sdpa_mask)
    if split_kv is None:
        split_kv = decode_kernel.available(model.device)
    model.set_attn_implementation(SPLIT_KV_NAME if split_kv else NAME)
    return True
