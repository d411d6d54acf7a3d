"""Gate and up projections with the activation between them, in one kernel: gelu_tanh(x Wg^T) * (x Wu^T).

A decode batch of one unit has a few dozen rows: the MLP's first product is bound by reading its
weights, and the activation after it is one more launch per layer with a gap before it. Here each
program multiplies BLOCK_N rows of the gate weight and the matching rows of the up weight, and applies
the activation to its tile before the only store (H100, 38 rows: 41.1 us, as fast as the cuBLAS
product alone, `scripts/bench_matmul.py`; a compiled decode step went from 5.19 to 5.05 ms). Gate, up
and the activation are rounded to the weights' dtype where the two-step path rounds them; float32
multiplies in full precision (not TF32). Up to MAX_ROWS rows (one tensor-core tile): the caller takes
one product and the activation for more.
"""

from __future__ import annotations

import functools

import torch

from degrader.decode_kernel import available, interpreting

try:
    import triton
    import triton.language as tl
except ImportError:  # annotations stay strings (__future__); jitted only in _kernel
    triton = tl = None

MAX_ROWS = 64
DTYPES = (torch.bfloat16, torch.float16, torch.float32)
BLOCK_N, BLOCK_K = 32, 64  # H100, 38 rows, 2 x 10240 x 2560 bf16: the fastest of 24 configurations


def _gate_up_kernel(x_ptr, w_ptr, out_ptr, rows, inter, k_dim, sxm, swn, som,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, DOT: tl.constexpr,
                    PRECISION: tl.constexpr):
    """out[:, n:n+BLOCK_N] = gelu_tanh(x W[n:n+BLOCK_N]^T) * (x W[inter+n:inter+n+BLOCK_N]^T)."""
    n = tl.program_id(0) * BLOCK_N
    rm, rn, rk = tl.arange(0, BLOCK_M), n + tl.arange(0, BLOCK_N), tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + rm[:, None] * sxm + rk[None, :]
    g_ptrs = w_ptr + rn[:, None] * swn + rk[None, :]
    u_ptrs = g_ptrs + inter * swn
    gate = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    up = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for _ in range(0, k_dim, BLOCK_K):
        x = tl.load(x_ptrs, mask=rm[:, None] < rows, other=0.0).to(DOT)
        gate += tl.dot(x, tl.trans(tl.load(g_ptrs).to(DOT)), input_precision=PRECISION)
        up += tl.dot(x, tl.trans(tl.load(u_ptrs).to(DOT)), input_precision=PRECISION)
        x_ptrs += BLOCK_K
        g_ptrs += BLOCK_K
        u_ptrs += BLOCK_K
    gate = gate.to(out_ptr.dtype.element_ty).to(tl.float32)
    up = up.to(out_ptr.dtype.element_ty).to(tl.float32)
    # 0.5 (1 + tanh(z)) = sigmoid(2 z), z = sqrt(2 / pi) (g + 0.044715 g^3)
    act = gate * tl.sigmoid(1.5957691216057308 * (gate + 0.044715 * gate * gate * gate))
    act = act.to(out_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + rm[:, None] * som + rn[None, :], (act * up).to(out_ptr.dtype.element_ty),
             mask=rm[:, None] < rows)


@functools.cache
def _kernel(interpret: bool):
    if interpret:
        from triton.runtime.interpreter import InterpretedFunction
        return InterpretedFunction(_gate_up_kernel)
    return triton.jit(_gate_up_kernel)


def applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the kernel takes x [..., K] and the gate|up weight [2 I, K]: few rows, whole tiles, one dtype."""
    rows = x.numel() // x.shape[-1]
    return (rows <= MAX_ROWS and weight.dim() == 2 and weight.shape[0] % (2 * BLOCK_N) == 0
            and x.shape[-1] == weight.shape[1] and weight.shape[1] % BLOCK_K == 0 and x.dtype == weight.dtype
            and x.dtype in DTYPES and weight.is_contiguous())


@torch.library.custom_op("degrader::gate_up_gelu", mutates_args=())
def _gate_up_gelu_op(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x [M, K] contiguous, weight [2 I, K] (gate rows, then up rows) -> [M, I]; one launch."""
    rows, inter = x.shape[0], weight.shape[0] // 2
    if x.dim() != 2 or not x.is_contiguous() or not applies(x, weight):
        raise ValueError(f"gate_up_gelu takes x [M <= {MAX_ROWS}, K] contiguous and a contiguous weight [2 I, K] of "
                         f"its dtype ({', '.join(map(str, DTYPES))}), I a multiple of {BLOCK_N} and K of {BLOCK_K}; got "
                         f"{tuple(x.shape)} {x.dtype} and {tuple(weight.shape)} {weight.dtype}")
    if not available(x.device):
        raise ValueError(f"gate_up_gelu needs triton and a CUDA device, or triton's interpreter; got {x.device}")
    out = x.new_empty(rows, inter)
    interpret = interpreting()
    # the interpreter multiplies bf16/fp16 as their raw integer bits: it gets float32 operands instead
    dot = tl.float32 if interpret else getattr(tl, str(x.dtype).removeprefix("torch."))
    _kernel(interpret)[(inter // BLOCK_N,)](
        x, weight, out, rows, inter, x.shape[1], x.stride(0), weight.stride(0), out.stride(0),
        BLOCK_M=max(16, triton.next_power_of_2(rows)), BLOCK_N=BLOCK_N, BLOCK_K=BLOCK_K, DOT=dot,
        PRECISION="ieee" if x.dtype == torch.float32 else "tf32", num_warps=4, num_stages=3)
    return out


@_gate_up_gelu_op.register_fake
def _(x, weight):
    return x.new_empty(x.shape[0], weight.shape[0] // 2)


def gate_up_gelu(x: torch.Tensor, weight: torch.Tensor, kernel: bool) -> torch.Tensor:
    """gelu_tanh(x Wg^T) * (x Wu^T) for weight = [Wg; Wu]: the kernel where it `applies` (and `kernel`: it is
    `available` on the device, asked once by the caller), else one product and the activation."""
    if kernel and applies(x, weight):
        flat = x.reshape(-1, x.shape[-1]).contiguous()
        return torch.ops.degrader.gate_up_gelu(flat, weight).view(*x.shape[:-1], weight.shape[0] // 2)
    gate, up = torch.nn.functional.linear(x, weight).chunk(2, dim=-1)
    return torch.nn.functional.gelu(gate, approximate="tanh") * up
