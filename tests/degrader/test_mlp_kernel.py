"""The gate|up + GELU kernel equals the two-step MLP; it runs on CPU in triton's interpreter.

As in test_decode_kernel.py, one child process started with TRITON_INTERPRET=1 runs every kernel case
(`python test_mlp_kernel.py OUT`) and saves the outputs; the tests compare them here.
"""

import sys

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tests.conftest import interpreted_outputs

pytest.importorskip("triton", minversion="3.6")

from degrader import mlp_kernel  # noqa: E402

HIDDEN, INTER = 128, 64  # two K tiles, two programs


def reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The two-step path: the product (rounded to the dtype), then the activation."""
    gate, up = torch.nn.functional.linear(x, weight).chunk(2, dim=-1)
    return torch.nn.functional.gelu(gate, approximate="tanh") * up


def cases() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(2 * INTER, HIDDEN, generator=generator) * 0.1
    out = {}
    for rows in (1, 38, 64):
        out[f"float32, {rows} rows"] = (torch.randn(rows, HIDDEN, generator=generator), weight)
    out["bfloat16, 38 rows"] = (torch.randn(38, HIDDEN, generator=generator).bfloat16(), weight.bfloat16())
    return out


class CountOp(TorchDispatchMode):
    """Counts the calls of the kernel's op that reach the dispatcher."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls += func is torch.ops.degrader.gate_up_gelu.default
        return func(*args, **(kwargs or {}))


def run_cases(path: str) -> None:
    """In the interpreted child: the kernel's outputs, the op under torch.compile, and the real embedded model."""
    from degrader.fused import fuse_projections
    from degrader.generation import encode
    from degrader.models import load_model

    assert mlp_kernel.available("cpu")  # the interpreter is on
    outputs = {name: torch.ops.degrader.gate_up_gelu(x, w) for name, (x, w) in cases().items()}
    x, weight = cases()["float32, 38 rows"]
    torch.library.opcheck(torch.ops.degrader.gate_up_gelu.default, (x, weight),
                          test_utils=("test_schema", "test_faketensor"))
    compiled = torch.compile(lambda x, w: mlp_kernel.gate_up_gelu(x, w, kernel=True), backend="aot_eager",
                             fullgraph=True, dynamic=False)
    outputs["compiled"] = compiled(x[None], weight)  # [1, 38, K]: flattened around the op
    loaded = load_model("embedded", dtype="float32", device="cpu")
    inputs = encode(loaded, ["The dream began in a house that", "Hello"])  # 2 x 8 rows: one tile
    with torch.no_grad():  # one forward (a kernel call per layer takes about a second in the interpreter)
        outputs["expected"] = loaded.model(**inputs).logits
        fuse_projections(loaded.model)
        with CountOp() as counter:
            outputs["got"] = loaded.model(**inputs).logits
    outputs["calls"] = counter.calls
    torch.save(outputs, path)


@pytest.fixture(scope="module")
def interpreted(tmp_path_factory) -> dict:
    return interpreted_outputs(__file__, tmp_path_factory.mktemp("mlp_kernel") / "outputs.pt", timeout=900)


@pytest.mark.parametrize("name", list(cases()))
def test_equals_the_product_then_the_activation(interpreted, name):
    x, weight = cases()[name]
    expected, got = reference(x, weight), interpreted[name]
    assert got.dtype == x.dtype and got.shape == (x.shape[0], INTER)
    # bf16: both paths round the product; triton's interpreter truncates (up to 3 units in the last place)
    atol, rtol = (1e-5, 1e-5) if x.dtype == torch.float32 else (2e-2, 4e-2)
    assert torch.allclose(got.float(), expected.float(), atol=atol, rtol=rtol)


def test_is_an_opaque_op_under_torch_compile(interpreted):
    x, weight = cases()["float32, 38 rows"]
    assert torch.allclose(interpreted["compiled"][0], reference(x, weight), atol=1e-5, rtol=1e-5)


def test_the_embedded_model_gives_the_same_logits_through_it(interpreted):
    assert interpreted["calls"] == 18  # every layer's MLP
    assert torch.allclose(interpreted["got"], interpreted["expected"], atol=1e-3, rtol=1e-4)


def test_more_rows_than_a_tile_or_partial_tiles_take_the_two_step_path():
    weight = torch.randn(2 * INTER, HIDDEN)
    assert mlp_kernel.applies(torch.randn(2, 32, HIDDEN), weight)
    assert not mlp_kernel.applies(torch.randn(65, HIDDEN), weight)
    assert not mlp_kernel.applies(torch.randn(4, HIDDEN), torch.randn(2 * INTER + 2, HIDDEN))
    assert not mlp_kernel.applies(torch.randn(4, HIDDEN).bfloat16(), weight)
    x = torch.randn(65, HIDDEN)  # not on a device with the kernel: the two steps, whatever `kernel` says
    assert torch.equal(mlp_kernel.gate_up_gelu(x, weight, kernel=True), reference(x, weight))


if __name__ == "__main__":
    run_cases(sys.argv[1])


def test_unsupported_inputs_raise():
    with pytest.raises(ValueError, match="I a multiple of 32"):
        torch.ops.degrader.gate_up_gelu(torch.randn(4, HIDDEN), torch.randn(2 * INTER + 2, HIDDEN))
    with pytest.raises(ValueError, match="M <= 64"):
        torch.ops.degrader.gate_up_gelu(torch.randn(65, HIDDEN), torch.randn(2 * INTER, HIDDEN))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the compiled kernel needs a CUDA GPU")
@pytest.mark.parametrize("dtype,tolerance", [(torch.bfloat16, 1e-2), (torch.float32, 1e-5)])
def test_on_the_gpu_equals_the_product_then_the_activation(dtype, tolerance):
    """bf16 tensor cores, and float32 in full precision (a TF32 product would miss by about 1e-3)."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(38, 2560, generator=generator).to("cuda", dtype)
    weight = (torch.randn(2 * 1024, 2560, generator=generator) * 0.02).to("cuda", dtype)
    got = mlp_kernel.gate_up_gelu(x, weight, kernel=True)
    torch.testing.assert_close(got.float(), reference(x, weight).float(), atol=tolerance, rtol=tolerance)
