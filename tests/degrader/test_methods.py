import pytest
import torch

from degrader.methods import get_method
from degrader.seeding import generator_for


def weights(seed: int = 0, shape=(64, 128)) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def degraded(method: str, level: float, weight: torch.Tensor, seed: int = 42, name: str = "w") -> torch.Tensor:
    copy = weight.clone()
    get_method(method).apply(copy, level, generator_for("cpu", seed, name))
    return copy


@pytest.mark.parametrize("method,level", [("mult_gauss", -0.1), ("mult_gauss", float("nan")), ("ablation", 1.5),
                                          ("ablation", -0.01), ("uni_quant", 1), ("uni_quant", 2.5),
                                          ("uni_quant", -2)])
def test_bad_levels_raise_with_the_rule(method, level):
    with pytest.raises(ValueError, match=method):
        get_method(method).validate(level)


def test_unknown_method_lists_the_registry():
    with pytest.raises(ValueError,
                       match="ablation, mean_out, mult_gauss, permute, shuffle_cols, shuffle_rows, uni_quant"):
        get_method("gaussian")


@pytest.mark.parametrize("method", ["mult_gauss", "ablation", "uni_quant"])
def test_level_zero_leaves_weights_bitwise_identical(method):
    get_method(method).validate(0)  # the control level of every schedule
    weight = weights()
    assert torch.equal(degraded(method, 0.0, weight), weight)


def test_mult_gauss_rescales_the_same_noise_across_levels():
    weight = weights()
    small, large = degraded("mult_gauss", 0.1, weight), degraded("mult_gauss", 0.4, weight)
    noise_small, noise_large = small / weight - 1, large / weight - 1
    torch.testing.assert_close(noise_large, 4 * noise_small, rtol=1e-3, atol=1e-4)
    assert 0.09 < noise_small.std().item() < 0.11


def test_ablation_zeroes_about_p_and_nests_across_levels():
    weight = weights(shape=(256, 256))
    masks = {p: degraded("ablation", p, weight) == 0 for p in (0.2, 0.5, 0.8)}
    for p, mask in masks.items():
        assert abs(mask.float().mean().item() - p) < 0.01
    assert bool((masks[0.2] <= masks[0.5]).all()) and bool((masks[0.5] <= masks[0.8]).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("n_values", [2, 4, 16, 1024])
def test_uni_quant_leaves_at_most_n_distinct_values(n_values, dtype):
    weight = weights(shape=(128, 128)).to(dtype)
    quantized = degraded("uni_quant", n_values, weight)
    assert quantized.unique().numel() <= n_values
    assert quantized.min() == weight.min() and quantized.max() == weight.max()


def test_draws_depend_on_seed_and_name_not_on_global_rng():
    weight = weights()
    torch.manual_seed(1)
    first = degraded("mult_gauss", 0.5, weight, seed=43, name="layer.0")
    torch.manual_seed(2)
    assert torch.equal(first, degraded("mult_gauss", 0.5, weight, seed=43, name="layer.0"))
    assert not torch.equal(first, degraded("mult_gauss", 0.5, weight, seed=44, name="layer.0"))
    assert not torch.equal(first, degraded("mult_gauss", 0.5, weight, seed=43, name="layer.1"))


@pytest.mark.parametrize("method", ["mean_out", "shuffle_rows", "shuffle_cols", "permute"])
def test_fraction_methods_validate_and_leave_level_zero_alone(method):
    with pytest.raises(ValueError, match=f"{method} level"):
        get_method(method).validate(1.2)
    weight = weights()
    assert torch.equal(degraded(method, 0.0, weight), weight)


def test_mean_out_sets_a_nested_fraction_to_the_tensor_mean():
    weight = weights(shape=(256, 256))
    mean = weight.mean().item()
    masks = {p: degraded("mean_out", p, weight) != weight for p in (0.2, 0.6)}
    for p, mask in masks.items():
        assert abs(mask.float().mean().item() - p) < 0.01
        assert torch.allclose(degraded("mean_out", p, weight)[mask], torch.tensor(mean))
    assert bool((masks[0.2] <= masks[0.6]).all())


@pytest.mark.parametrize("method,dim", [("shuffle_rows", 0), ("shuffle_cols", 1)])
def test_shuffles_permute_a_fraction_of_whole_rows_or_columns(method, dim):
    weight = weights(shape=(200, 300))
    shuffled = degraded(method, 0.5, weight)
    lines = lambda t: t if dim == 0 else t.t()  # noqa: E731
    moved = (lines(shuffled) != lines(weight)).any(dim=1)
    assert 0.35 < moved.float().mean().item() <= 0.6  # selected lines that landed elsewhere
    original = {tuple(row.tolist()) for row in lines(weight)}
    assert {tuple(row.tolist()) for row in lines(shuffled)} == original  # same lines, new places
    # the lines that moved were exchanged among themselves
    assert sorted(map(tuple, lines(shuffled)[moved].tolist())) == sorted(map(tuple, lines(weight)[moved].tolist()))


@pytest.mark.parametrize("method", ["shuffle_rows", "shuffle_cols", "permute", "mean_out"])
def test_fraction_methods_take_4d_weights(method):
    weight = torch.randn((8, 3, 4, 4), generator=torch.Generator().manual_seed(0))  # a patch-embedding kernel
    assert not torch.equal(degraded(method, 0.9, weight), weight)


def test_permute_moves_a_fraction_of_elements_and_keeps_the_multiset():
    weight = weights(shape=(128, 128))
    permuted = degraded("permute", 0.3, weight)
    assert torch.equal(permuted.flatten().sort().values, weight.flatten().sort().values)
    assert 0.25 < (permuted != weight).float().mean().item() < 0.31
    assert torch.equal(permuted, degraded("permute", 0.3, weight))  # seeded: the same twice
