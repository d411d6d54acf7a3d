"""The matrix products of one decode step at a few rows: cuBLAS as the model ran them, fused, and Triton.

    python scripts/bench_matmul.py [--rows 38]

Each variant runs the products of all decoder layers of Gemma-3-4b-it (q, k, v, o, gate, up, down;
or q|k|v, o, gate|up, down as one product each) in one CUDA graph, so launch gaps count as they do
in the compiled decode step, and prints ms per step and the bandwidth on the weights read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import triton
import triton.language as tl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from degrader.memory import datasheet_bandwidth  # noqa: E402


@triton.jit
def _skinny(x_ptr, w_ptr, out_ptr, M, N, K, sxm, swn, sos, som,
            BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SPLIT_K: tl.constexpr):
    pid_n, pid_k = tl.program_id(0), tl.program_id(1)
    rm, rn, rk = tl.arange(0, BLOCK_M), pid_n * BLOCK_N + tl.arange(0, BLOCK_N), tl.arange(0, BLOCK_K)
    k_len = K // SPLIT_K
    x_ptrs = x_ptr + rm[:, None] * sxm + (pid_k * k_len + rk)[None, :]
    w_ptrs = w_ptr + rn[:, None] * swn + (pid_k * k_len + rk)[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for _ in range(0, k_len, BLOCK_K):
        x = tl.load(x_ptrs, mask=rm[:, None] < M, other=0.0)
        w = tl.load(w_ptrs)
        acc += tl.dot(x, tl.trans(w))
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    out = out_ptr + pid_k * sos + rm[:, None] * som + rn[None, :]
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=rm[:, None] < M)


class Skinny:
    """x [M, K] @ w[N, K]^T with one Triton config (split-K partials summed by torch)."""

    def __init__(self, x, w, block_n, block_k, split_k, warps, stages):
        self.x, self.w, self.cfg = x, w, (block_n, block_k, split_k, warps, stages)
        m, n = x.shape[0], w.shape[0]
        self.block_m = max(16, triton.next_power_of_2(m))
        dtype = torch.float32 if split_k > 1 else x.dtype
        self.partials = torch.empty(split_k, m, n, device=x.device, dtype=dtype)

    def valid(self) -> bool:
        block_n, block_k, split_k, *_ = self.cfg
        return self.w.shape[0] % block_n == 0 and self.x.shape[1] % (block_k * split_k) == 0

    def __call__(self):
        block_n, block_k, split_k, warps, stages = self.cfg
        (m, k), n = self.x.shape, self.w.shape[0]
        _skinny[(n // block_n, split_k)](self.x, self.w, self.partials, m, n, k, self.x.stride(0),
                                         self.w.stride(0), self.partials.stride(0), self.partials.stride(1),
                                         BLOCK_M=self.block_m, BLOCK_N=block_n, BLOCK_K=block_k, SPLIT_K=split_k,
                                         num_warps=warps, num_stages=stages)
        return self.partials[0] if split_k == 1 else self.partials.sum(0).to(self.x.dtype)


def graph_ms(fn, replays: int = 20) -> float:
    """Milliseconds per replay of fn captured in a CUDA graph."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / replays


SKINNY_CONFIGS = [(bn, bk, sk, w, st) for bn in (16, 32, 64, 128) for bk in (128, 256) for sk in (1, 2, 4)
                  for w, st in ((4, 3), (4, 5), (8, 4))]  # block_n, block_k, split_k, warps, stages
HIDDEN, INTER, Q_OUT, KV_OUT, VOCAB = 2560, 10240, 2048, 1024, 262208  # Gemma-3-4b-it


def per_call_ms(ops) -> float:
    """Milliseconds per op of `ops` (one per layer: each reads its own weight, none from the L2 cache)."""
    return graph_ms(lambda: [op() for op in ops], replays=10) / len(ops)


def best(make_ops, configs, label):
    """(ms per call, config) of the fastest config; make_ops(config) -> the ops of every layer."""
    timed = []
    for config in configs:
        try:
            ops = make_ops(config)
            if ops[0].valid():
                timed.append((per_call_ms(ops), config))
        except Exception as error:  # noqa: BLE001 (a config that does not compile)
            print(f"  {label}: config {config} failed: {type(error).__name__}: {str(error)[:120]}")
    if not timed:
        raise RuntimeError(f"no configuration of {label} ran")
    return min(timed)


def make_layers(n: int, dev: torch.device, dt: torch.dtype) -> list[dict]:
    """Random weights of n layers; the separate q, k, v (gate, up) are row blocks (views) of the fused ones."""
    layers = []
    for _ in range(n):
        qkv = torch.randn(Q_OUT + 2 * KV_OUT, HIDDEN, device=dev, dtype=dt) * 0.02
        gate_up = torch.randn(2 * INTER, HIDDEN, device=dev, dtype=dt) * 0.02
        layers.append(dict(qkv=qkv, q=qkv[:Q_OUT], k=qkv[Q_OUT:Q_OUT + KV_OUT], v=qkv[Q_OUT + KV_OUT:],
                           o=torch.randn(HIDDEN, Q_OUT, device=dev, dtype=dt) * 0.02,
                           gate_up=gate_up, gate=gate_up[:INTER], up=gate_up[INTER:],
                           down=torch.randn(HIDDEN, INTER, device=dev, dtype=dt) * 0.02))
    return layers


def whole_steps(layers, inputs, total, bandwidth) -> None:
    """All layers' products in one graph: cuBLAS separate and fused."""
    for label, names in (("cuBLAS separate (q k v o gate up down)", ["q", "k", "v", "o", "gate", "up", "down"]),
                         ("cuBLAS fused (qkv o gate_up down)", ["qkv", "o", "gate_up", "down"])):
        ms = graph_ms(lambda: [torch.mm(inputs[n], layer[n].t()) for layer in layers for n in names])
        print(f"  {label}: {ms:.3f} ms, {total / ms / 1e6:.0f} GB/s ({total / ms * 1e3 / bandwidth:.0%})")


def per_shape(layers, inputs) -> dict:
    """cuBLAS and the best Triton config per product shape; returns the configs."""
    chosen = {}
    for n in ("q", "k", "v", "qkv", "o", "gate", "gate_up", "down"):
        cub = graph_ms(lambda: [torch.mm(inputs[n], layer[n].t()) for layer in layers], replays=10) / len(layers)
        ms, chosen[n] = best(lambda c: [Skinny(inputs[n], layer[n], *c) for layer in layers], SKINNY_CONFIGS, n)
        nbytes = layers[0][n].numel() * 2
        print(f"  {n:8s} {tuple(layers[0][n].shape)}: cuBLAS {cub * 1e3:.1f} us ({nbytes / cub / 1e6:.0f} GB/s), "
              f"triton {ms * 1e3:.1f} us ({nbytes / ms / 1e6:.0f} GB/s) cfg {chosen[n]}")
    return chosen


def triton_steps(layers, inputs, chosen, total, bandwidth) -> None:
    """All layers' products in one graph, through the Triton kernels."""
    names = ["qkv", "o", "gate_up", "down"]
    ops = [Skinny(inputs[n], layer[n], *chosen[n]) for layer in layers for n in names]
    ms = graph_ms(lambda: [op() for op in ops])
    print(f"  triton fused (qkv o gate_up down): {ms:.3f} ms, {total / ms / 1e6:.0f} GB/s "
          f"({total / ms * 1e3 / bandwidth:.0%})")


def output_head(x, dev, dt) -> None:
    head = torch.randn(VOCAB, HIDDEN, device=dev, dtype=dt) * 0.02
    nbytes = head.numel() * 2
    cub = graph_ms(lambda: torch.mm(x, head.t()), replays=10)
    ms, config = best(lambda c: [Skinny(x, head, *c)], [c for c in SKINNY_CONFIGS if c[2] == 1 and c[0] >= 64], "head")
    print(f"  output head {tuple(head.shape)}: cuBLAS {cub:.3f} ms ({nbytes / cub / 1e6:.0f} GB/s), "
          f"triton {ms:.3f} ms ({nbytes / ms / 1e6:.0f} GB/s) cfg {config}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[38])
    parser.add_argument("--layers", type=int, default=34)
    args = parser.parse_args()
    dev, dt = torch.device("cuda"), torch.bfloat16
    bandwidth = datasheet_bandwidth(torch.cuda.get_device_name())
    print(torch.cuda.get_device_name(), torch.__version__, triton.__version__)
    layers = make_layers(args.layers, dev, dt)
    total = sum(layers[0][n].numel() for n in ("qkv", "o", "gate_up", "down")) * 2 * args.layers
    for rows in args.rows:
        x = torch.randn(rows, HIDDEN, device=dev, dtype=dt)
        inputs = {n: x for n in ("q", "k", "v", "qkv", "gate", "up", "gate_up")}
        inputs["o"] = torch.randn(rows, Q_OUT, device=dev, dtype=dt)
        inputs["down"] = torch.randn(rows, INTER, device=dev, dtype=dt)
        print(f"\nrows {rows}: {args.layers} layers, {total / 1e9:.2f} GB of weights per step")
        whole_steps(layers, inputs, total, bandwidth)
        chosen = per_shape(layers, inputs)
        triton_steps(layers, inputs, chosen, total, bandwidth)
        output_head(x, dev, dt)


if __name__ == "__main__":
    main()
