import pytest
import torch

from degrader import memory
from degrader.decoding.generation import SamplingParams, generate
from degrader.decoding.static_decode import StaticDecoder, bucket, static_cache
from degrader.random_models import random_config

PROMPTS = ["The capital of France is", "Once upon a time, in a small village by the sea, there lived", "1, 2, 3,"]


@pytest.mark.parametrize("do_sample", [False, True])
def test_static_path_gives_the_same_tokens_as_the_dynamic_path(embedded, do_sample):
    params = SamplingParams(max_new_tokens=12, do_sample=do_sample)
    dynamic = generate(embedded, PROMPTS, params, [1, 2, 3])
    decoder = StaticDecoder(embedded.model, batch_size=5, prompt_length=20, params=params, compile=False)
    static = generate(embedded, PROMPTS, params, [1, 2, 3], decoder=decoder)
    assert [(g.text, g.tokens_out) for g in static] == [(g.text, g.tokens_out) for g in dynamic]
    again = generate(embedded, PROMPTS[:2], params, [1, 2], decoder=decoder)  # cache reset between batches
    assert [g.text for g in again] == [g.text for g in dynamic[:2]]


def test_compiled_step_gives_the_same_tokens_as_eager(embedded):
    params = SamplingParams(max_new_tokens=8, do_sample=False)
    eager = generate(embedded, PROMPTS, params, [1, 2, 3])
    decoder = StaticDecoder(embedded.model, batch_size=4, prompt_length=20, params=params, compile=True)
    from torch._dynamo.utils import counters

    graphs = counters["stats"]["unique_graphs"]
    warm = generate(embedded, PROMPTS, params, [1, 2, 3], decoder=decoder, steps=3)  # a warm-up compiles the step
    assert [g.tokens_out for g in warm] == [3, 3, 3] and counters["stats"]["unique_graphs"] > graphs
    graphs = counters["stats"]["unique_graphs"]
    with torch._dynamo.config.patch(error_on_recompile=True):  # compiled once, replayed by every later batch
        assert [g.text for g in generate(embedded, PROMPTS, params, [1, 2, 3], decoder=decoder)] == \
            [g.text for g in eager]
        assert [g.text for g in generate(embedded, PROMPTS, params, [1, 2, 3], decoder=decoder)] == \
            [g.text for g in eager]
    assert counters["stats"]["unique_graphs"] == graphs  # nothing left to compile after the warm-up


def test_shapes_are_bucketed_and_batches_padded(embedded):
    assert [bucket(n) for n in (1, 16, 17, 130)] == [16, 16, 32, 144]
    decoder = StaticDecoder(embedded.model, batch_size=4, prompt_length=20, params=SamplingParams(max_new_tokens=4),
                            compile=False)
    inputs = embedded.tokenizer(PROMPTS[:2], return_tensors="pt", padding=True, padding_side="left")
    padded, seeds = decoder.pad(dict(inputs), torch.tensor([7, 8]))
    assert padded["input_ids"].shape == (4, 32) and seeds.tolist() == [7, 8, 8, 8]
    assert padded["attention_mask"][:2].sum().item() == inputs["attention_mask"].sum().item()
    with pytest.raises(ValueError, match="does not fit"):
        decoder.pad(dict(embedded.tokenizer(PROMPTS * 2, return_tensors="pt", padding=True)), torch.arange(6))


def test_sliding_layers_become_full_static_layers_while_the_window_never_fills():
    from transformers.cache_utils import StaticLayer, StaticSlidingWindowLayer

    config = random_config("gemma-3-270m")  # sliding window 512
    plain, windowed = static_cache(config, 500), static_cache(config, 600)
    assert all(type(layer) is StaticLayer for layer in plain[0].layers) and not plain[1]
    assert any(isinstance(layer, StaticSlidingWindowLayer) for layer in windowed[0].layers) and windowed[1]


def test_batch_size_follows_free_memory_and_kv_bytes_per_token():
    config = random_config("gemma-3-4b-it")
    assert memory.kv_bytes_per_token(config, 2) == 2 * 34 * 4 * 256 * 2  # 139,264 bytes per token
    one = memory.estimate(config, torch.bfloat16, 1, 414)
    per_sequence = one.kv_cache + one.logits + one.activations
    assert memory.max_batch(config, torch.bfloat16, 10 * per_sequence, 414, headroom=1.0) == 10
    assert memory.max_batch(config, torch.bfloat16, 70 * 2**30, 414) > 38


def test_a_decoder_changes_no_process_wide_setting(embedded):
    with torch._dynamo.config.patch(cache_size_limit=8):  # raised by edits.prepare_for_decoding, undoably
        StaticDecoder(embedded.model, batch_size=2, prompt_length=16, params=SamplingParams(max_new_tokens=4))
        assert torch._dynamo.config.cache_size_limit == 8
