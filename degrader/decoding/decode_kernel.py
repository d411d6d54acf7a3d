"""Split-KV ("flash-decoding") attention for one query token per row against a static KV cache.

SDPA reads the whole static cache at every decode step, left padding and not yet written positions
included. Here each program owns one (row, key/value head) and one slice of the sequence, and loads a
cache row only where the mask is True: a masked `tl.load` issues no memory traffic for its lanes. The
query heads of a group are the rows of one `tl.dot` (padded to 16). Partial results of the slices are
merged with their softmax statistics: out = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.

Triton is optional: the module imports without it and `available` says whether the kernel can run.
On CPU the kernel runs in Triton's interpreter (tests), which TRITON_INTERPRET=1 turns on at triton's import.
Float32 inputs on the GPU multiply in TF32 (tl.dot's default); a row with no True mask entry gives 0.
"""

from __future__ import annotations

import functools

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # annotations stay strings (__future__): the kernels below define, jitted only in _kernels
    triton = tl = None

GROUP_PAD = 16  # tl.dot needs at least 16 rows; the query heads of a group are padded up to it
PROGRAMS_PER_SM = 4  # enough resident programs per SM to keep loads in flight
DTYPES = (torch.bfloat16, torch.float16, torch.float32)
DEFAULT_SMS = 132  # H100 SXM; used where the device has no SM count (the CPU interpreter)


def _partials_kernel(q_ptr, k_ptr, v_ptr, mask_ptr, acc_ptr, m_ptr, l_ptr, scale, seq_len, split_len,
                     heads, group, qsb, qsh, qsg, qsd, ksb, ksh, ksn, ksd, vsb, vsh, vsn, vsd, msb, msn,
                     GROUP_ROWS: tl.constexpr, DIM: tl.constexpr, BLOCK_N: tl.constexpr, DOT: tl.constexpr):
    """Unnormalised attention of one (row, kv head) over one split: acc [G, D], max m and sum l per query."""
    pid, split, splits = tl.program_id(0), tl.program_id(1), tl.num_programs(1)
    b, h = (pid // heads).to(tl.int64), (pid % heads).to(tl.int64)
    rows, dims = tl.arange(0, GROUP_ROWS), tl.arange(0, DIM)
    q = tl.load(q_ptr + b * qsb + h * qsh + rows[:, None] * qsg + dims[None, :] * qsd,
                mask=(rows < group)[:, None], other=0.0).to(DOT)
    k_base, v_base = k_ptr + b * ksb + h * ksh, v_ptr + b * vsb + h * vsh
    # -1e30, not -inf: a fully masked tile then gives exp(m - m) = 1 (zeroed by `valid`), never exp(nan)
    m_i = tl.full([GROUP_ROWS], -1.0e30, tl.float32)
    l_i = tl.zeros([GROUP_ROWS], tl.float32)
    acc = tl.zeros([GROUP_ROWS, DIM], tl.float32)
    start = split * split_len
    end = tl.minimum(start + split_len, seq_len)
    for tile in range(start, end, BLOCK_N):
        keys = tile + tl.arange(0, BLOCK_N)
        valid = tl.load(mask_ptr + b * msb + keys * msn, mask=keys < end, other=0) != 0
        # both tiles are requested before any arithmetic: twice the bytes in flight per program
        k = tl.load(k_base + keys[:, None] * ksn + dims[None, :] * ksd, mask=valid[:, None], other=0.0).to(DOT)
        v = tl.load(v_base + keys[:, None] * vsn + dims[None, :] * vsd, mask=valid[:, None], other=0.0).to(DOT)
        scores = tl.where(valid[None, :], tl.dot(q, tl.trans(k)) * scale, -1.0e30)
        m_new = tl.maximum(m_i, tl.max(scores, 1))
        alpha = tl.exp(m_i - m_new)
        p = tl.where(valid[None, :], tl.exp(scores - m_new[:, None]), 0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(DOT), v)
        l_i = l_i * alpha + tl.sum(p, 1)
        m_i = m_new
    stats = (pid * splits + split) * group + rows  # partials are [B * Hkv, splits, G] (+ [D] for acc)
    tl.store(acc_ptr + stats[:, None] * DIM + dims[None, :], acc, mask=(rows < group)[:, None])
    tl.store(m_ptr + stats, m_i, mask=rows < group)
    tl.store(l_ptr + stats, l_i, mask=rows < group)


def _combine_kernel(acc_ptr, m_ptr, l_ptr, out_ptr, splits, group,
                    SPLIT_ROWS: tl.constexpr, DIM: tl.constexpr):
    """Merge the splits of one query head into its output row, in the output's dtype."""
    row = tl.program_id(0)  # (b * Hkv + h) * G + g, also the row of the contiguous output
    pid, g = row // group, row % group
    parts, dims = tl.arange(0, SPLIT_ROWS), tl.arange(0, DIM)
    stats = (pid * splits + parts) * group + g
    m = tl.load(m_ptr + stats, mask=parts < splits, other=-1.0e30)
    weight = tl.exp(m - tl.max(m, 0))
    total = tl.sum(weight * tl.load(l_ptr + stats, mask=parts < splits, other=0.0), 0)
    acc = tl.load(acc_ptr + stats[:, None] * DIM + dims[None, :], mask=(parts < splits)[:, None], other=0.0)
    out = tl.sum(weight[:, None] * acc, 0) / tl.where(total == 0.0, 1.0, total)  # a row with no key gives 0
    tl.store(out_ptr + row * DIM + dims, out.to(out_ptr.dtype.element_ty))


def available(device: torch.device | str = "cuda") -> bool:
    """Whether the kernel can run on `device`: triton and CUDA present, or (CPU) triton's interpreter on."""
    if triton is None:
        return False
    if _interpreting():
        return True
    return torch.device(device).type == "cuda" and torch.cuda.is_available()


@functools.cache
def _interpreting() -> bool:
    """Whether triton runs kernels in its interpreter: TRITON_INTERPRET=1 when triton.language was imported."""
    from triton.runtime.interpreter import InterpretedFunction

    # triton.language's own helpers (tl.sum, ...) are jitted at its import: interpreted only if it was on then
    return isinstance(tl.sum, InterpretedFunction)


@functools.cache
def _kernels():
    """The two kernels, compiled for the GPU or wrapped for triton's interpreter."""
    if _interpreting():
        from triton.runtime.interpreter import InterpretedFunction
        return InterpretedFunction(_partials_kernel), InterpretedFunction(_combine_kernel)
    return triton.jit(_partials_kernel), triton.jit(_combine_kernel)


def block_size(dim: int) -> int:
    """Keys per tile: K and V tiles of 16 KiB each at D=256 bf16, so several programs fit per SM."""
    return 32 if dim > 128 else 64


def num_splits(batch: int, kv_heads: int, seq_len: int, block_n: int, device: torch.device) -> int:
    """Slices of the sequence per (row, kv head): a few programs per SM, at least one tile each."""
    sms = _sm_count(device.index or 0) if device.type == "cuda" else DEFAULT_SMS
    wanted = triton.cdiv(PROGRAMS_PER_SM * sms, batch * kv_heads)
    return max(1, min(wanted, triton.cdiv(seq_len, block_n)))


@functools.cache
def _sm_count(index: int) -> int:
    """Multiprocessors of CUDA device `index` (asked once: the op runs at every layer of every eager step)."""
    return torch.cuda.get_device_properties(index).multi_processor_count


def _check(query, key, value, mask) -> None:
    """Raise ValueError for inputs the kernel does not handle."""
    if query.dim() != 4 or key.dim() != 4 or key.shape != value.shape:
        raise ValueError(f"expected query [B, Hkv, G, D] and key/value [B, Hkv, S, D] of one shape, got "
                         f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    (batch, heads, _, dim), seq_len = query.shape, key.shape[2]
    if key.shape[:2] != (batch, heads) or key.shape[3] != dim or dim < 16 or dim & (dim - 1):
        raise ValueError(f"key {tuple(key.shape)} must be [{batch}, {heads}, S, {dim}] with D a power of two >= 16")
    if mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1:3] != (1, 1) or mask.shape[0] not in (1, batch) \
            or mask.shape[3] < seq_len:
        raise ValueError(f"mask must be bool [{batch} or 1, 1, 1, >= {seq_len}], got {mask.dtype} {tuple(mask.shape)}")
    if query.dtype not in DTYPES:
        raise ValueError(f"query dtype {query.dtype} is not one of {DTYPES}")
    if not (query.dtype == key.dtype == value.dtype) or not (query.device == key.device == value.device == mask.device):
        raise ValueError(f"query, key and value need one dtype and one device, got {query.dtype}, {key.dtype}, "
                         f"{value.dtype} on {query.device}, {key.device}, {value.device}, mask on {mask.device}")


@torch.library.custom_op("degrader::split_kv_decode", mutates_args=())
def _split_kv_decode_op(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor,
                        scale: float, block_n: int, splits: int) -> torch.Tensor:
    """Check, size (0: the kernel's choice) and launch both kernels.

    Everything but the op call stays in here: torch.compile sees one opaque op (no graph break in the
    model's forward) and CUDA graphs capture the two launches as they are.
    """
    _check(query, key, value, mask)
    (batch, heads, group, dim), seq_len = query.shape, key.shape[2]
    block_n = block_n or block_size(dim)
    if block_n < 16 or block_n & (block_n - 1):
        raise ValueError(f"block_n must be a power of two >= 16 (tl.dot's smallest tile), got {block_n}")
    if not available(query.device):
        raise ValueError(f"split_kv_decode needs triton (installed: {triton is not None}) and a CUDA device, or "
                         f"triton's interpreter (TRITON_INTERPRET=1 before triton is imported); got {query.device}")
    splits = splits or num_splits(batch, heads, seq_len, block_n, query.device)
    split_len = triton.cdiv(triton.cdiv(seq_len, splits), block_n) * block_n  # whole tiles per split
    splits = triton.cdiv(seq_len, split_len)  # no empty trailing split
    stats = torch.empty(batch * heads, splits, group, device=query.device, dtype=torch.float32)
    acc, m, l = stats.new_empty(*stats.shape, dim), torch.empty_like(stats), torch.empty_like(stats)
    out = query.new_empty(query.shape)  # contiguous, as the combine kernel writes it
    flags = mask.expand(batch, 1, 1, mask.shape[3]).view(torch.uint8)  # strides passed, nothing copied
    interpret = _interpreting()
    partials, combine = _kernels()
    # the interpreter multiplies bf16/fp16 as their raw integer bits: it gets float32 operands instead
    dot = tl.float32 if interpret else getattr(tl, str(query.dtype).removeprefix("torch."))
    partials[(batch * heads, splits)](
        query, key, value, flags, acc, m, l, scale, seq_len, split_len, heads, group, *query.stride(),
        *key.stride(), *value.stride(), flags.stride(0), flags.stride(3),
        GROUP_ROWS=max(GROUP_PAD, triton.next_power_of_2(group)), DIM=dim, BLOCK_N=block_n, DOT=dot,
        num_warps=4, num_stages=2)
    combine[(batch * heads * group,)](acc, m, l, out, splits, group,
                                      SPLIT_ROWS=max(2, triton.next_power_of_2(splits)),
                                      DIM=dim, num_warps=4)
    return out


@_split_kv_decode_op.register_fake
def _(query, key, value, mask, scale, block_n, splits):
    """The output's shape, dtype and layout, for tracing without running the kernels."""
    return query.new_empty(query.shape)


def split_kv_decode(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scale: float,
                    block_n: int = 0, splits: int = 0) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v of query [B, Hkv, G, D] on a cache [B, Hkv, S, D] under mask [B, 1, 1, >= S].

    `block_n` and `splits` override the keys per tile and the slices of the sequence (benchmarks, tests).
    Raises ValueError for inputs the kernel does not handle.
    """
    return torch.ops.degrader.split_kv_decode(query, key, value, mask, float(scale), block_n or 0, splits or 0)
