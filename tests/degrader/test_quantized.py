import pytest
import torch

from degrader.baseline import Baseline
from degrader.groups import Target
from degrader.methods import get_method
from degrader.quantized import dequantized, is_4bit
from degrader.seeding import generator_for

bnb = pytest.importorskip("bitsandbytes")


def four_bit(seed: int = 0, shape=(64, 128), nested: bool = False) -> torch.Tensor:
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4", compress_statistics=nested)._quantize("cpu")


@pytest.mark.parametrize("nested", [False, True])
def test_4bit_weights_are_degraded_in_their_dequantized_values(nested):
    tensor = four_bit(nested=nested)
    assert is_4bit(tensor) and tensor.dtype == torch.uint8
    before = dequantized(tensor)
    expected = before.clone()
    get_method("mult_gauss").apply(expected, 0.5, generator_for("cpu", 43, "w"))
    Baseline([Target("w", tensor)]).degrade("mult_gauss", 0.5, 43)
    after = dequantized(tensor)
    assert not torch.equal(after, before)
    # what is stored is exactly the lesioned real-valued weights, quantized again with the same settings
    requantized = dequantized(bnb.nn.Params4bit(expected, requires_grad=False, quant_type="nf4",
                                                compress_statistics=nested)._quantize("cpu"))
    assert torch.equal(after, requantized)


@pytest.mark.parametrize("nested", [False, True])
def test_4bit_baseline_restores_bytes_and_state_exactly(nested):
    tensor = four_bit(1, nested=nested)
    packed, absmax = tensor.data.clone(), tensor.quant_state.absmax.clone()
    baseline = Baseline([Target("w", tensor)])
    for repeat_index, (method, level) in enumerate([("ablation", 0.5), ("mult_gauss", 1.0), ("uni_quant", 4)]):
        baseline.restore()
        baseline.degrade(method, level, 42 + repeat_index)
    assert not torch.equal(tensor.data, packed)
    baseline.restore()
    assert torch.equal(tensor.data, packed) and torch.equal(tensor.quant_state.absmax, absmax)


def test_4bit_ablation_zeroes_dequantized_weights():
    tensor = four_bit(2)
    Baseline([Target("w", tensor)]).degrade("ablation", 0.5, 42)
    assert 0.45 < (dequantized(tensor) == 0).float().mean().item() < 0.55
