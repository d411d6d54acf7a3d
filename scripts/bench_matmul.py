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

from degrader import mlp_kernel  # noqa: E402


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


class GateUp:
    """degrader/mlp_kernel.py's kernel (gate|up and the GELU) with one configuration."""

    def __init__(self, x, gate_up, block_n, block_k, warps, stages):
        self.x, self.w, self.cfg = x, gate_up, (block_n, block_k, warps, stages)
        self.block_m = max(16, triton.next_power_of_2(x.shape[0]))
        self.out = torch.empty(x.shape[0], gate_up.shape[0] // 2, device=x.device, dtype=x.dtype)

    def valid(self) -> bool:
        return self.out.shape[1] % self.cfg[0] == 0 and self.x.shape[1] % self.cfg[1] == 0

    def __call__(self):
        block_n, block_k, warps, stages = self.cfg
        (m, k), inter = self.x.shape, self.out.shape[1]
        mlp_kernel._kernel(False)[(inter // block_n,)](
            self.x, self.w, self.out, m, inter, k, self.x.stride(0), self.w.stride(0), self.out.stride(0),
            BLOCK_M=self.block_m, BLOCK_N=block_n, BLOCK_K=block_k, DOT=tl.bfloat16, num_warps=warps,
            num_stages=stages)
        return self.out


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


def best(candidates, label):
    timed = []
    for make in candidates:
        try:
            op = make()
            if op.valid():
                timed.append((graph_ms(lambda: [op() for _ in range(8)], replays=10) / 8, op))
        except Exception as error:  # noqa: BLE001 (a config that does not compile)
            print(f"  {label}: config failed: {type(error).__name__}: {str(error)[:120]}")
    timed.sort(key=lambda t: t[0])
    return timed[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[38])
    parser.add_argument("--layers", type=int, default=34)
    args = parser.parse_args()
    hidden, inter, q_out, kv_out, vocab = 2560, 10240, 2048, 1024, 262208
    dev, dt = torch.device("cuda"), torch.bfloat16
    bandwidth = 3.35e12 if "H100" in torch.cuda.get_device_name() else 4.8e12
    print(torch.cuda.get_device_name(), torch.__version__, triton.__version__)
    layers = []
    for _ in range(args.layers):  # fused storage; the separate weights are row blocks (views) of it
        qkv = torch.randn(q_out + 2 * kv_out, hidden, device=dev, dtype=dt) * 0.02
        gate_up = torch.randn(2 * inter, hidden, device=dev, dtype=dt) * 0.02
        layers.append(dict(qkv=qkv, q=qkv[:q_out], k=qkv[q_out:q_out + kv_out], v=qkv[q_out + kv_out:],
                           o=torch.randn(hidden, q_out, device=dev, dtype=dt) * 0.02,
                           gate_up=gate_up, gate=gate_up[:inter], up=gate_up[inter:],
                           down=torch.randn(hidden, inter, device=dev, dtype=dt) * 0.02))
    head = torch.randn(vocab, hidden, device=dev, dtype=dt) * 0.02
    layer_bytes = sum(layers[0][n].numel() for n in ("qkv", "o", "gate_up", "down")) * 2
    for rows in args.rows:
        x = torch.randn(rows, hidden, device=dev, dtype=dt)
        a = torch.randn(rows, q_out, device=dev, dtype=dt)
        h = torch.randn(rows, inter, device=dev, dtype=dt)
        inputs = {"q": x, "k": x, "v": x, "qkv": x, "o": a, "gate": x, "up": x, "gate_up": x, "down": h}

        def cublas(names):
            def run():
                for layer in layers:
                    for n in names:
                        torch.mm(inputs[n], layer[n].t())
            return run

        total = layer_bytes * args.layers
        print(f"\nrows {rows}: {args.layers} layers, {total / 1e9:.2f} GB of weights per step")
        for label, names in (("cuBLAS separate (q k v o gate up down)", ["q", "k", "v", "o", "gate", "up", "down"]),
                             ("cuBLAS fused (qkv o gate_up down)", ["qkv", "o", "gate_up", "down"])):
            ms = graph_ms(cublas(names))
            print(f"  {label}: {ms:.3f} ms, {total / ms / 1e6:.0f} GB/s ({total / ms * 1e3 / bandwidth:.0%})")
        per_shape = {}
        configs = [(bn, bk, sk, w, st) for bn in (16, 32, 64, 128) for bk in (128, 256) for sk in (1, 2, 4)
                   for w, st in ((4, 3), (4, 5), (8, 4))]
        for n in ("q", "k", "v", "qkv", "o", "gate", "gate_up", "down"):
            w = layers[0][n]
            cub = graph_ms(lambda: [torch.mm(inputs[n], w.t()) for _ in range(8)], replays=10) / 8
            ms, op = best([lambda c=c: Skinny(inputs[n], w, *c) for c in configs], n)
            per_shape[n] = op.cfg
            nbytes = w.numel() * 2
            print(f"  {n:8s} {tuple(w.shape)}: cuBLAS {cub * 1e3:.1f} us ({nbytes / cub / 1e6:.0f} GB/s), "
                  f"triton {ms * 1e3:.1f} us ({nbytes / ms / 1e6:.0f} GB/s) cfg {op.cfg}")
        gu_configs = [(bn, bk, w, st) for bn in (16, 32, 64, 128) for bk in (64, 128)
                      for w, st in ((4, 3), (4, 5), (8, 4))]
        ms, gu = best([lambda c=c: GateUp(x, layers[0]["gate_up"], *c) for c in gu_configs], "gate-up")
        per_shape["gate_up_act"] = gu.cfg
        print(f"  gate+up+gelu fused kernel: {ms * 1e3:.1f} us ({2 * layers[0]['gate'].numel() * 2 / ms / 1e6:.0f} "
              f"GB/s) cfg {gu.cfg}")
        ref = torch.nn.functional.gelu(torch.mm(x, layers[0]["gate"].t()), approximate="tanh") * torch.mm(
            x, layers[0]["up"].t())
        print(f"  gate+up+gelu max |diff| vs torch: {(gu() - ref).abs().max().item():.4f} "
              f"(largest value {ref.abs().max().item():.3f})")

        def triton_run(names, fused_mlp):
            ops = []
            for layer in layers:
                for n in names:
                    ops.append(Skinny(inputs[n], layer[n], *per_shape[n]))
                if fused_mlp:
                    ops.append(GateUp(x, layer["gate_up"], *per_shape["gate_up_act"]))
                    ops.append(Skinny(h, layer["down"], *per_shape["down"]))
            return lambda: [op() for op in ops]

        for label, names, fused_mlp in (("triton fused (qkv o gate_up down)", ["qkv", "o", "gate_up", "down"], False),
                                        ("triton qkv, o, gate+up+gelu, down", ["qkv", "o"], True)):
            ms = graph_ms(triton_run(names, fused_mlp))
            print(f"  {label}: {ms:.3f} ms, {total / ms / 1e6:.0f} GB/s ({total / ms * 1e3 / bandwidth:.0%})")
        cub = graph_ms(lambda: torch.mm(x, head.t()), replays=10)
        ms, op = best([lambda c=c: Skinny(x, head, *c) for c in configs if c[2] == 1 and c[0] >= 64], "head")
        print(f"  lm head {tuple(head.shape)}: cuBLAS {cub:.3f} ms ({head.numel() * 2 / cub / 1e6:.0f} GB/s), "
              f"triton {ms:.3f} ms ({head.numel() * 2 / ms / 1e6:.0f} GB/s) cfg {op.cfg}")


if __name__ == "__main__":
    main()
