"""DecoderCache: static decoders by key, evicted when their rows no longer fit or their stacks are gone (CPU)."""

import gc
import weakref

import pytest
import torch

from degrader.decoding.generation import SamplingParams, generate
from degrader.decoding.static_decode import LENGTH_BUCKET
from degrader.groups import resolve_group
from degrader.run.decoder_cache import DecoderCache, DecoderKey
from degrader.run.weights import WeightState

PARAMS = SamplingParams(max_new_tokens=4)


def key(rows: int, units: int = 1, length: int = 20, params: SamplingParams = PARAMS, stacks: int = 0) -> DecoderKey:
    """An uncompiled decoder's key (mode None: the same shapes and cache, no torch.compile)."""
    return DecoderKey(rows, units, length, params, None, stacks)


def test_a_decoder_is_built_once_per_key_and_ready_once_it_has_decoded_a_batch(embedded):
    cache = DecoderCache(embedded.model)
    decoder = cache.get(key(4))
    assert cache.get(key(4)) is decoder and decoder.batch_size == 4 and decoder.prompt_length == 2 * LENGTH_BUCKET
    assert not cache.ready(key(4))  # built, not run
    generate(embedded, ["The dream began", "Hello"], PARAMS, [1, 2], decoder=decoder)
    assert cache.ready(key(4)) and not cache.ready(key(2)) and not cache.ready(key(4, units=2))
    assert key(4, length=17) == key(4, length=32)  # prompt lengths are bucketed as the decoder buckets them
    with pytest.raises(ValueError, match="at least 1 row"):
        key(0)


def test_fewer_rows_evict_the_larger_decoders_and_more_rows_keep_the_smaller(embedded):
    cache = DecoderCache(embedded.model)
    cache.get(key(2))
    cache.get(key(4))  # the prompts per batch grew back: the smaller decoder stays for the next halving
    assert sorted(k.rows for k in cache) == [2, 4]
    small = cache.decoders[key(2)]
    assert cache.get(key(2)) is small and [k.rows for k in cache] == [2]  # out of memory: the larger one goes


def test_other_settings_evict_every_decoder(embedded):
    cache = DecoderCache(embedded.model)
    cache.get(key(2))
    cache.get(key(1, units=2))
    assert list(cache) == [key(1, units=2)]
    cache.get(key(1, units=2, length=40))
    cache.get(key(1, units=2, length=40, params=SamplingParams(max_new_tokens=8)))
    assert list(cache) == [key(1, units=2, length=40, params=SamplingParams(max_new_tokens=8))]


def test_installing_or_dropping_stacks_retires_the_decoders_built_for_the_previous_modules(embedded):
    cache = DecoderCache(embedded.model)
    weights = WeightState(embedded.model, torch.device("cpu"), cache.retire_stacks)
    weights.switch(resolve_group(embedded.model, "attn_only"))
    try:
        cache.get(key(2, stacks=weights.generation))
        weights.fit(1)  # one unit needs no stacks: nothing changes
        assert len(cache) == 1
        weights.fit(2)
        assert (weights.units_per_batch, len(cache)) == (2, 0)
        cache.get(key(2, units=2, stacks=weights.generation))
        assert weights.holds(2) and weights.holds(1) and not weights.holds(3)
        weights.fit(2)  # the installed stacks already hold 2: kept, and so is their decoder
        assert len(cache) == 1
        weights.drop()
        assert (weights.units_per_batch, len(cache), weights.generation) == (1, 0, 2)
    finally:
        weights.clean()


def test_the_eviction_that_leaves_no_compiled_decoder_calls_on_released(embedded):
    released = []
    cache = DecoderCache(embedded.model, lambda: released.append(len(cache)))
    compiled = DecoderKey(2, 1, 20, PARAMS, "reduce-overhead", 0)  # built, not run: torch.compile wraps lazily
    cache.get(key(2))
    cache.get(compiled)  # other settings: the uncompiled decoder goes, no compiled one went
    cache.get(DecoderKey(4, 1, 20, PARAMS, "reduce-overhead", 0))  # more rows: the smaller compiled one stays
    assert released == [] and len(cache) == 2
    # built but never run: not ready (a warm-up is skipped only on a decoder that has decoded a batch)
    assert not cache.ready(compiled) and not cache.ready(DecoderKey(3, 1, 20, PARAMS, "reduce-overhead", 0))
    cache.get(compiled)  # fewer rows: the larger compiled decoder goes, the smaller still holds compiled code
    assert released == []
    cache.retire_stacks(1)  # every decoder goes: the last compiled one with them
    assert released == [0] and len(cache) == 0


def test_an_evicted_decoder_and_its_kv_cache_are_freed_at_once(embedded):
    """Eviction drops a decoder's last reference: its KV cache goes then, not at the cycle collector's next pass.
    (A decoder that held its step bound to itself was a reference cycle, so its cache outlived the eviction.)"""
    cache = DecoderCache(embedded.model)
    ran = cache.get(key(2))
    generate(embedded, ["The capital of France is"], PARAMS, [1], decoder=ran, steps=1)  # fills its cache
    freed = [weakref.ref(ran), weakref.ref(ran.cache.layers[0].keys)]
    del ran
    gc.disable()  # only reference counting may free them
    try:
        compiled = cache.get(DecoderKey(4, 1, 20, PARAMS, "reduce-overhead", 0))  # other settings: evicts the first
        assert len(cache) == 1 and [ref() for ref in freed] == [None, None]
        freed = weakref.ref(compiled)
        del compiled
        cache.retire_stacks(1)  # a compiled decoder (built, not run) goes the same way
        assert len(cache) == 0 and freed() is None
    finally:
        gc.enable()
