"""The split-KV decode kernel equals SDPA; its kernels run on CPU in triton's interpreter.

Triton turns its interpreter on only if TRITON_INTERPRET=1 when `triton.language` is imported (its own
helpers are jitted then), and other tests may import triton first. So one child process, started with
the switch, runs every kernel case of this file (`python test_decode_kernel.py OUT`) and saves the outputs;
the tests compare them with SDPA here.
"""

import sys

import pytest
import torch

from tests.conftest import interpreted_outputs

pytest.importorskip("triton", minversion="3.6")  # older interpreters fail on numpy 2

from degrader.decoding.decode_kernel import available, num_splits, split_kv_decode  # noqa: E402

SEQ, DIM, SCALE = 70, 64, 0.125  # 70 keys: not a multiple of the 16-key tiles used here
SPANS = [(0, 70), (7, 61), (40, 61)]  # per row: left padding, then positions not yet written
# row 2 with 3 splits of 32 keys: the first split and the last (keys 64..69) attend to nothing
CASES = {  # name: (query heads per kv head, dtype, splits; None = the heuristic)
    "group 1, float32, one split": (1, torch.float32, 1),
    "group 2, float32, 3 splits": (2, torch.float32, 3),
    "group 4, bfloat16, 3 splits": (4, torch.bfloat16, 3),
    "group 2, bfloat16, one split": (2, torch.bfloat16, 1),
    "group 2, bfloat16, heuristic splits": (2, torch.bfloat16, None),
}


def decode_inputs(group: int, dtype: torch.dtype, heads: int = 2):
    """Query [3, heads, group, D], key/value caches [3, heads, SEQ, D] and a mask 5 columns wider than the cache."""
    generator = torch.Generator().manual_seed(group)
    query = torch.randn(len(SPANS), heads, group, DIM, generator=generator).to(dtype)
    key, value = (torch.randn(len(SPANS), heads, SEQ, DIM, generator=generator).to(dtype) for _ in range(2))
    mask = torch.ones(len(SPANS), 1, 1, SEQ + 5, dtype=torch.bool)  # columns past the cache are never read
    for row, (start, end) in enumerate(SPANS):
        mask[row, ..., :start] = mask[row, ..., end:SEQ] = False
    return query, key, value, mask


def strided_inputs():
    """Query with D not contiguous, caches laid out [B, S, H, D] (transposed views), one mask for all rows."""
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(3, 4, DIM, 2, generator=generator).transpose(-1, -2)
    key, value = (torch.randn(3, SEQ, 4, DIM, generator=generator).transpose(1, 2) for _ in range(2))
    mask = torch.zeros(1, 1, 1, SEQ, dtype=torch.bool)
    mask[..., 9:50] = True
    return query, key, value, mask


def poisoned(query, key, value, mask):
    """The same inputs with nan keys and inf values wherever the mask leaves the cache out."""
    hidden = ~mask[..., : key.shape[2]].transpose(-1, -2)  # [B, 1, S, 1]
    return query, key.masked_fill(hidden, float("nan")), value.masked_fill(hidden, float("inf")), mask


def reference(query, key, value, mask):
    """SDPA in float32 on the same values, as `grouped_decode_sdpa` calls it."""
    return torch.nn.functional.scaled_dot_product_attention(query.float(), key.float(), value.float(),
                                                            attn_mask=mask[..., : key.shape[2]], scale=SCALE)


def run_cases(path: str) -> None:
    """In the interpreted child: every kernel output this file checks, saved to `path`."""
    outputs = {name: split_kv_decode(*decode_inputs(group, dtype), SCALE, block_n=16, splits=splits)
               for name, (group, dtype, splits) in CASES.items()}
    outputs["poisoned"] = split_kv_decode(*poisoned(*decode_inputs(2, torch.float32)), SCALE, block_n=16, splits=3)
    outputs["strided"] = split_kv_decode(*strided_inputs(), SCALE, block_n=32, splits=2)
    args = (*decode_inputs(2, torch.float32, heads=1), SCALE, 16, 2)
    torch.library.opcheck(torch.ops.degrader.split_kv_decode.default, args,
                          test_utils=("test_schema", "test_faketensor"))
    compiled = torch.compile(lambda *inputs: split_kv_decode(*inputs, block_n=16, splits=2), backend="aot_eager",
                             fullgraph=True, dynamic=False)
    outputs["compiled"] = compiled(*args[:5])
    torch.save(outputs, path)


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory) -> dict:
    """The kernel outputs of `run_cases`, from a child process with triton's interpreter on."""
    return interpreted_outputs(__file__, tmp_path_factory.mktemp("decode_kernel") / "outputs.pt", timeout=300)


@pytest.mark.parametrize("name", CASES)
def test_matches_sdpa(interpreted, name):
    group, dtype, _ = CASES[name]
    inputs, tolerance = decode_inputs(group, dtype), 1e-5 if dtype == torch.float32 else 2e-2
    out = interpreted[name]
    assert out.shape == inputs[0].shape and out.dtype == dtype
    torch.testing.assert_close(out.float(), reference(*inputs), atol=tolerance, rtol=tolerance)


def test_masked_cache_positions_are_never_used(interpreted):
    """nan/inf in every masked-out cache row would reach the output if the kernel read or weighted them."""
    assert torch.isfinite(interpreted["poisoned"]).all()
    expected = reference(*decode_inputs(2, torch.float32))
    torch.testing.assert_close(interpreted["poisoned"], expected, atol=1e-5, rtol=1e-5)


def test_reads_strided_inputs_and_a_mask_shared_by_all_rows(interpreted):
    torch.testing.assert_close(interpreted["strided"], reference(*strided_inputs()), atol=1e-5, rtol=1e-5)


def test_is_an_opaque_op_under_torch_compile(interpreted):
    """The child ran opcheck (schema, fake implementation) and a fullgraph compile through the op."""
    expected = reference(*decode_inputs(2, torch.float32, heads=1))
    torch.testing.assert_close(interpreted["compiled"], expected, atol=1e-5, rtol=1e-5)


def test_splits_give_a_few_programs_per_sm_and_at_least_a_tile_each():
    cpu = torch.device("cpu")  # counted as 132 SMs, an H100's
    assert num_splits(38, 4, 382, 32, cpu) == 4  # 152 (row, kv head) pairs -> 608 programs
    assert num_splits(380, 4, 382, 32, cpu) == 1
    assert num_splits(1, 1, 40, 32, cpu) == 2  # as many as there are tiles, no more


def test_unsupported_inputs_raise():
    query, key, value, mask = decode_inputs(2, torch.float32)
    with pytest.raises(ValueError, match="mask must be bool"):
        split_kv_decode(query, key, value, mask.float(), SCALE)
    with pytest.raises(ValueError, match="mask must be bool"):
        split_kv_decode(query, key, value, mask[..., : SEQ - 1], SCALE)
    with pytest.raises(ValueError, match="must be"):
        split_kv_decode(query, key[:, :1], value[:, :1], mask, SCALE)
    with pytest.raises(ValueError, match="one dtype"):
        split_kv_decode(query, key.bfloat16(), value.bfloat16(), mask, SCALE)
    with pytest.raises(ValueError, match="block_n"):
        split_kv_decode(query, key, value, mask, SCALE, block_n=24)


@pytest.mark.skipif(available("cpu"), reason="this process runs triton's interpreter")
def test_cpu_tensors_need_the_interpreter():
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        split_kv_decode(*decode_inputs(2, torch.float32), SCALE)


if __name__ == "__main__":
    run_cases(sys.argv[1])
