"""Decode attention on the GPU: one query token per row against a static KV cache, per layer.

    python scripts/bench_attention.py      # Gemma-3-4b-it shapes, batch 38 and 380, 382-token cache

Compares SDPA backends, a plain matmul-softmax-matmul and the split-KV Triton kernel
(`degrader.decoding.decode_kernel`) on grouped queries ([B, kv_heads, group, D]), each compiled as the decode
step is, and prints microseconds per call, the share of the bandwidth needed to read the keys and values
once (the split-KV kernel skips masked rows, so it can pass 1), and the largest difference from a float32
matmul reference and from eager SDPA.

    python scripts/bench_attention.py --block-n 64 --splits 8   # override the kernel's tile and slices
    python scripts/bench_attention.py --kv-heads 1 --group 4       # Gemma-3-270m shapes
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from degrader.decoding import decode_kernel  # noqa: E402
from degrader.memory import datasheet_bandwidth  # noqa: E402


def matmul_attention(query, key, value, mask, scale):
    scores = torch.matmul(query, key.transpose(-1, -2)).float() * scale
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.matmul(scores.softmax(dim=-1).to(value.dtype), value)


def sdpa(backend):
    def attend(query, key, value, mask, scale):
        with sdpa_kernel(backend):
            return torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale)
    return attend


def split_kv(block_n: int, splits: int):
    def attend(query, key, value, mask, scale):
        return decode_kernel.split_kv_decode(query, key, value, mask, scale, block_n=block_n or None,
                                             splits=splits or None)
    return attend


def all_layers(attend):
    """One call attends every layer's cache, as a decode step does (launch overhead amortised)."""
    def step(query, keys, values, mask, scale):
        return [attend(query, key, value, mask, scale) for key, value in zip(keys, values, strict=True)]
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


def print_kernels(fn, *args) -> None:
    """GPU and CPU time per kernel and call over 5 calls (is the launch the bound, or the kernel?)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            fn(*args)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8, max_name_column_width=60), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[38, 380])
    parser.add_argument("--length", type=int, default=382)
    parser.add_argument("--bandwidth", type=float, help="bytes/s (default: the GPU's datasheet figure)")
    parser.add_argument("--layers", type=int, default=34)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--group", type=int, default=2, help="query heads per key/value head")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--block-n", type=int, default=0, help="split-KV keys per tile (0: the kernel's choice)")
    parser.add_argument("--splits", type=int, default=0, help="split-KV sequence slices (0: the kernel's choice)")
    parser.add_argument("--only", nargs="*", help="time only these variants (e.g. split-kv efficient)")
    parser.add_argument("--profile", action="store_true", help="also print each variant's GPU kernels (torch.profiler)")
    args = parser.parse_args()
    torch._dynamo.config.cache_size_limit = 64  # one compiled variant per backend and batch: past dynamo's 8
    kv_heads, group, dim = args.kv_heads, args.group, args.dim
    bandwidth = args.bandwidth or datasheet_bandwidth(torch.cuda.get_device_name())
    variants = {"cudnn": sdpa(SDPBackend.CUDNN_ATTENTION), "efficient": sdpa(SDPBackend.EFFICIENT_ATTENTION),
                "math-sdpa": sdpa(SDPBackend.MATH), "matmul": matmul_attention}
    if decode_kernel.available("cuda"):
        variants["split-kv"] = split_kv(args.block_n, args.splits)
    else:
        print("split-kv unavailable: needs triton and CUDA", flush=True)
    variants = {name: fn for name, fn in variants.items() if not args.only or name in args.only}
    for batch in args.batches:
        query = torch.randn(batch, kv_heads, group, dim, device="cuda", dtype=torch.bfloat16)
        keys, values = ([torch.randn(batch, kv_heads, args.length, dim, device="cuda", dtype=torch.bfloat16)
                         for _ in range(args.layers)] for _ in range(2))
        for cache in keys + values:  # as StaticCache does: CUDA graphs then read them in place, no copy per call
            torch._dynamo.mark_static_address(cache)
        key, value = keys[0], values[0]
        mask = torch.ones(batch, 1, 1, args.length, device="cuda", dtype=torch.bool)
        mask[:, :, :, : args.length // 3] = False  # left padding and not yet written positions
        floor = 2 * key.numel() * key.element_size() / bandwidth * 1e6
        reference = matmul_attention(query, key, value, mask, dim ** -0.5)
        eager_sdpa = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                                                      scale=dim ** -0.5)
        for name, fn in variants.items():
            try:
                compiled = torch.compile(all_layers(fn), mode="reduce-overhead", dynamic=False)
                out = compiled(query, keys, values, mask, dim ** -0.5)[0]
                error = (out.float() - reference.float()).abs().max().item()
                sdpa_error = (out.float() - eager_sdpa.float()).abs().max().item()
                us = time_us(compiled, query, keys, values, mask, dim ** -0.5)
                print(f"batch {batch:4d} {name:10s} {us:8.1f} us/call  {floor / us:5.2f} of bandwidth  "
                      f"max|diff| {error:.3g}  vs sdpa {sdpa_error:.3g}", flush=True)
                if args.profile:
                    print_kernels(compiled, query, keys, values, mask, dim ** -0.5)
            except Exception as exc:  # a backend that refuses these shapes
                print(f"batch {batch:4d} {name:10s} unavailable: {str(exc).splitlines()[0][:120]}", flush=True)


if __name__ == "__main__":
    main()
