"""Rep-batching on the real embedded model: per-repetition copies equal the per-unit weights and tokens."""

import pytest
import torch

from degrader.baseline import Baseline
from degrader.decoding.generation import SamplingParams, decode, encode, perplexities, perplexity, tile_rows
from degrader.decoding.rep_batch import UnitEmbedding, UnitLinear, UnitStacks, unsupported_reason
from degrader.decoding.static_decode import StaticDecoder
from degrader.groups import resolve_group
from tests.conftest import PARAGRAPH

PROMPTS = ["The dream began in a house that", "I was walking by the sea and"]
GREEDY = SamplingParams(max_new_tokens=12, do_sample=False)
SEEDS = [42, 43]  # repetitions 0 and 1 of seed 42


def per_unit_tokens(loaded, baseline, inputs, level, params, row_seeds):
    """What the per-unit path generates: the live model degraded for one repetition at a time."""
    outputs = []
    for seed in SEEDS:
        with baseline.degraded("mult_gauss", level, seed):
            outputs.append(decode(loaded.model, inputs, params, row_seeds, [1], 0))
    return outputs


@pytest.mark.parametrize("group,method,level", [("attn_only", "mult_gauss", 0.5), ("embed_only", "ablation", 0.3),
                                                ("mlp_only", "shuffle_rows", 0.5), ("attn_only", "permute", 0.2)])
def test_each_copy_is_bitwise_the_per_unit_weight_of_its_level_and_repetition(embedded, group, method, level):
    targets = resolve_group(embedded.model, group)
    baseline = Baseline(targets)
    stacks = UnitStacks(embedded.model, targets, 4)
    units = [(level, SEEDS[0]), (level, SEEDS[1]), (level / 2, SEEDS[0])]  # two levels in one batch
    stacks.degrade(method, [lv for lv, _ in units], [seed for _, seed in units])
    for rep, (unit_level, seed) in enumerate([*units, units[-1]]):  # the fourth copy repeats the last unit
        with baseline.degraded(method, unit_level, seed):
            assert all(torch.equal(stacks.weight(t, rep), t.tensor) for t in targets), (group, rep)
    assert not torch.equal(stacks.weight(targets[0], 0), stacks.weight(targets[0], 1))
    assert not torch.equal(stacks.weight(targets[0], 0), stacks.weight(targets[0], 2))
    with pytest.raises(ValueError, match="2 levels and 3 seeds"):
        stacks.degrade(method, [level] * 2, SEEDS + [44])


@pytest.mark.parametrize("group,modules", [("attn_only", 18), ("embed_only", 2), ("mlp_only", 54)])
def test_greedy_tokens_equal_the_per_unit_path_and_the_model_is_left_intact(embedded, group, modules):
    model = embedded.model
    reference = {name: p.detach().clone() for name, p in model.named_parameters()}
    targets = resolve_group(model, group)
    baseline = Baseline(targets)
    inputs = encode(embedded, PROMPTS)
    row_seeds = torch.tensor([1, 2])
    expected = per_unit_tokens(embedded, baseline, inputs, 0.4, GREEDY, row_seeds)
    assert not torch.equal(expected[0], expected[1])  # the repetitions do differ
    stacks = UnitStacks(model, targets, 2)
    stacks.degrade("mult_gauss", [0.4] * 2, SEEDS)
    assert len(stacks.swaps) == modules  # embed_only: the embedding and the output head tied to it
    with stacks.applied():
        kinds = {type(m) for m in model.modules()}
        assert (UnitEmbedding in kinds) == (group == "embed_only") and (UnitLinear in kinds)
        got = decode(model, tile_rows(inputs, 2), GREEDY, row_seeds.repeat(2), [1], 0)
    assert torch.equal(got[:2], expected[0]) and torch.equal(got[2:], expected[1])
    assert not ({UnitEmbedding, UnitLinear} & {type(m) for m in model.modules()})
    assert all(torch.equal(p, reference[name]) for name, p in model.named_parameters())


def test_sampled_tokens_follow_each_repetitions_seeds(embedded):
    targets = resolve_group(embedded.model, "attn_only")
    baseline = Baseline(targets)
    inputs = encode(embedded, PROMPTS)
    params = SamplingParams(max_new_tokens=12)
    row_seeds = [torch.tensor([7, 8]), torch.tensor([9, 10])]  # per repetition, as sampling_seed gives them
    expected = []
    for seed, rows in zip(SEEDS, row_seeds, strict=True):
        with baseline.degraded("mult_gauss", 0.3, seed):
            expected.append(decode(embedded.model, inputs, params, rows, [1], 0))
    stacks = UnitStacks(embedded.model, targets, 2)
    stacks.degrade("mult_gauss", [0.3] * 2, SEEDS)
    with stacks.applied():
        got = decode(embedded.model, tile_rows(inputs, 2), params, torch.cat(row_seeds), [1], 0)
    assert torch.equal(got, torch.cat(expected))


def test_static_decoder_pads_each_repetition_block_on_its_own(embedded):
    targets = resolve_group(embedded.model, "attn_only")
    baseline = Baseline(targets)
    inputs = encode(embedded, PROMPTS)
    row_seeds = torch.tensor([1, 2])
    expected = per_unit_tokens(embedded, baseline, inputs, 0.4, GREEDY, row_seeds)
    stacks = UnitStacks(embedded.model, targets, 2)
    stacks.degrade("mult_gauss", [0.4] * 2, SEEDS)
    decoder = StaticDecoder(embedded.model, 3, inputs["input_ids"].shape[1], GREEDY, compile=False, units=2)
    with stacks.applied():
        got = decoder.decode(tile_rows(inputs, 2), row_seeds.repeat(2), [1], 0)
    assert torch.equal(got, torch.cat(expected))
    with pytest.raises(ValueError, match="2 blocks of 3"):
        decoder.pad({key: value[:3] for key, value in tile_rows(inputs, 2).items()}, row_seeds.repeat(2)[:3])


def test_perplexity_of_each_repetition(embedded):
    targets = resolve_group(embedded.model, "attn_only")
    baseline = Baseline(targets)
    expected = []
    for seed in SEEDS:
        with baseline.degraded("mult_gauss", 0.5, seed):
            expected.append(perplexity(embedded, PARAGRAPH))
    stacks = UnitStacks(embedded.model, targets, 2)
    stacks.degrade("mult_gauss", [0.5] * 2, SEEDS)
    with stacks.applied():
        got = perplexities(embedded, PARAGRAPH, 2)
    assert got == pytest.approx(expected, rel=1e-5) and got[0] != got[1]


def test_modules_that_are_not_linear_or_embedding_are_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64))
    targets = resolve_group(model, "attn_only")  # the value slice of GPT-2's fused Conv1D
    assert "Conv1D" in unsupported_reason(model, targets)
    with pytest.raises(ValueError, match="units_per_batch=1"):
        UnitStacks(model, targets, 2)
    assert unsupported_reason(model, resolve_group(model, "embed_only")) is None
