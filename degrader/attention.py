"""Decode attention without copying the KV cache per query head.

Gemma 3 has fewer key/value heads than query heads (grouped-query attention). transformers' SDPA path
under torch.compile repeats every cached key and value once per query head of its group
(`repeat_kv`) at every decode step: for batch 38 and a 414-token cache that is about 0.3 GB written
and read again per layer, more than the cache itself. For one query token the query heads of a group
can instead ride in the query-length dimension ([B, heads, 1, D] -> [B, kv_heads, group, D]): the
same attention, computed on the cache as it is.
"""

from __future__ import annotations

import contextlib

import torch

NAME = "degrader_sdpa"


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


def _decode_backends(device: torch.device):
    """On CUDA prefer the memory-efficient kernel: for a few queries against a long masked cache it beats
    cuDNN's (scripts/bench_attention.py: 81 vs 110 us per layer at batch 38, 620 vs 750 at 380, H100)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH], set_priority=True)


def use_grouped_decode_attention(model) -> bool:
    """Switch an SDPA model to `grouped_decode_sdpa` (masks stay SDPA's); False when it does not use SDPA."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if model.config._attn_implementation not in ("sdpa", NAME):
        return False
    AttentionInterface.register(NAME, grouped_decode_sdpa)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True
