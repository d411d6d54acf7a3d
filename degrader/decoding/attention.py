"""Decode attention without copying the KV cache per query head.

Gemma 3 has fewer key/value heads than query heads (grouped-query attention). transformers' SDPA path
under torch.compile repeats every cached key and value once per query head of its group
(`repeat_kv`) at every decode step: for batch 38 and a 414-token cache that is about 0.3 GB written
and read again per layer, more than the cache itself. For one query token the query heads of a group
can instead ride in the query-length dimension ([B, heads, 1, D] -> [B, kv_heads, group, D]): the
same attention, computed on the cache as it is.

On CUDA (with triton) the packed queries go to a split-KV kernel (`degrader/decoding/decode_kernel.py`) that
reads only the cache positions the mask keeps: the filled part, not the whole static cache.
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from degrader.decoding import decode_kernel

NAME = "degrader_sdpa"  # grouped single-token queries through SDPA
SPLIT_KV_NAME = "degrader_split_kv"  # the same, through the split-KV kernel where it can run
DECODE_BACKENDS = [SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.MATH]


def grouped_decode_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                        is_causal=None, **kwargs):
    """transformers' SDPA attention, with single-token queries packed per key/value head."""
    if not _packable(module, query, attention_mask, kwargs):
        return _sdpa(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    return _packed_attention(module, query, key, attention_mask, _sdpa_attend(key, value, scaling))


def split_kv_decode_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                              is_causal=None, **kwargs):
    """`grouped_decode_sdpa`, with single-token queries on a boolean mask computed by the split-KV kernel.

    Selected only where the kernel can run; every test here is on shapes and dtypes, so a compiled
    decode step traces it without a graph break.
    """
    if not _packable(module, query, attention_mask, kwargs):
        return _sdpa(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs)
    if attention_mask is None or attention_mask.dtype != torch.bool:
        attend = _sdpa_attend(key, value, scaling)
    else:
        scale = query.shape[-1] ** -0.5 if scaling is None else scaling
        attend = lambda packed, mask: decode_kernel.split_kv_decode(packed, key, value, mask, scale)  # noqa: E731
    return _packed_attention(module, query, key, attention_mask, attend)


def _sdpa_attend(key, value, scaling):
    """attend(packed query, mask) through SDPA (on CUDA its memory-efficient kernel first)."""
    def attend(packed, mask):
        with _decode_backends(packed.device):
            return torch.nn.functional.scaled_dot_product_attention(packed, key, value, attn_mask=mask, scale=scaling)
    return attend


def _packable(module, query, attention_mask, kwargs) -> bool:
    """One query token, grouped key/value heads, one mask row for every head, no soft-capping."""
    shared_mask = attention_mask is None or attention_mask.shape[1] == 1
    return (query.shape[2] == 1 and getattr(module, "num_key_value_groups", 1) > 1 and shared_mask
            and kwargs.get("softcap") is None)


def _packed_attention(module, query, key, attention_mask, attend):
    """attend(query [B, kv_heads, group, D], mask [B, 1, 1, S]) as transformers' [B, 1, heads, D] output."""
    batch, heads, _, dim = query.shape
    groups = module.num_key_value_groups
    packed = query.reshape(batch, heads // groups, groups, dim)  # query head h reads key/value head h // groups
    mask = None if attention_mask is None else attention_mask[:, :, :, : key.shape[-2]]
    out = attend(packed, mask)
    return out.reshape(batch, heads, 1, out.shape[-1]).transpose(1, 2).contiguous(), None


def _sdpa(module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs):
    """transformers' own SDPA attention (prefill, and shapes the packed path does not take)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                  is_causal=is_causal, **kwargs)


def _decode_backends(device: torch.device):
    """On CUDA prefer the memory-efficient kernel: for a few queries against a long masked cache it beats
    cuDNN's (scripts/bench_attention.py: 35 vs 64 us per layer at batch 38, 221 vs 349 at 380, H100)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return sdpa_kernel(DECODE_BACKENDS, set_priority=True)


def use_grouped_decode_attention(model, split_kv: bool | None = None) -> bool:
    """Switch an SDPA model to grouped decode attention (masks stay SDPA's); False when it does not use SDPA.

    `split_kv`: through the split-KV kernel (default: where it can run on the model's device).
    The functions go into transformers' process-wide registries: `edits.ModelEdits.grouped_attention`
    records the switch and the registry entries, and undoes them.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if model.config._attn_implementation not in ("sdpa", NAME, SPLIT_KV_NAME):
        return False
    for name, function in ((NAME, grouped_decode_sdpa), (SPLIT_KV_NAME, split_kv_decode_attention)):
        AttentionInterface.register(name, function)
        AttentionMaskInterface.register(name, sdpa_mask)
    if split_kv is None:
        split_kv = decode_kernel.available(model.device)
    model.set_attn_implementation(SPLIT_KV_NAME if split_kv else NAME)
    return True
