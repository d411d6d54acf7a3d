"""Decode attention on the GPU: one query token per row against a static KV cache, per layer.

    python scripts/bench_attention.py      # Gemma-3-4b-it shapes, batch 38 and 380, 382-token cache

Compares SDPA backends and a plain matmul-softmax-matmul on grouped queries ([B, kv_heads, group, D]),
each compiled as the decode step is, and prints microseconds per call and the share of the bandwidth
needed to read the keys and values once.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel


def matmul_attention(query, key, value, mask, scale):
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(scores.softmax(dim=-1).to(value.dtype), value)


def sdpa(backend):
    def attend(query, key, value, mask, scale):
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale)
    return attend


def all_layers(attend):
    """One call attends every layer's cache, as a decode step does (launch overhead amortised)."""
    def step(query, keys, values, mask, scale):
        return [attend(query, key, value, mask, scale) for key, value in zip(keys, values)]
    return step


def time_us(fn, *args, repeats: int = 20) -> float:
    for _ in range(3):
        fn(*args)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn(*args)
    torch.cuda.synchronize()
    return 1e6 * (time.perf_counter() - started) / repeats / len(args[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[38, 380])
    parser.add_argument("--length", type=int, default=382)
    parser.add_argument("--bandwidth", type=float, default=3.35e12)
    parser.add_argument("--layers", type=int, default=34)
    args = parser.parse_args()
    kv_heads, group, dim = 4, 2, 256
    variants = {"cudnn": sdpa(SDPBackend.CUDNN_ATTENTION), "efficient": sdpa(SDPBackend.EFFICIENT_ATTENTION),
                "math-sdpa": sdpa(SDPBackend.MATH), "matmul": matmul_attention}
    for batch in args.batches:
        query = torch.randn(batch, kv_heads, group, dim, device="cuda", dtype=torch.bfloat16)
        keys, values = ([torch.randn(batch, kv_heads, args.length, dim, device="cuda", dtype=torch.bfloat16)
                         for _ in range(args.layers)] for _ in range(2))
        key, value = keys[0], values[0]
        mask = torch.ones(batch, 1, 1, args.length, device="cuda", dtype=torch.bool)
        mask[:, :, :, : args.length // 3] = False  # left padding and not yet written positions
        floor = 2 * key.numel() * key.element_size() / args.bandwidth * 1e6
        reference = matmul_attention(query, key, value, mask, dim ** -0.5)
        for name, fn in variants.items():
            try:
                compiled = torch.compile(all_layers(fn), mode="reduce-overhead", dynamic=False)
                out = compiled(query, keys, values, mask, dim ** -0.5)[0]
                error = (out.float() - reference.float()).abs().max().item()
                us = time_us(compiled, query, keys, values, mask, dim ** -0.5)
                print(f"batch {batch:4d} {name:10s} {us:8.1f} us/call  {floor / us:5.2f} of bandwidth  max|diff| {error:.3g}",
                      flush=True)
            except Exception as exc:  # a backend that refuses these shapes
                print(f"batch {batch:4d} {name:10s} unavailable: {str(exc).splitlines()[0][:120]}", flush=True)


if __name__ == "__main__":
    main()
