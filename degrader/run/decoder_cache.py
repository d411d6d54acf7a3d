"""Compiled static decoders of one model, by the shape and settings they were built for and the stacks they ran with.

A decoder holds a KV cache for all its rows and a compiled step that captured the model's modules, so
one that can no longer run is evicted rather than kept: when the unit stacks it ran with are gone
(`retire_stacks`), and when another key is asked for that it cannot serve (other settings, or fewer rows
per unit block after out of memory). Nothing else resets the cache. An eviction that leaves no compiled
decoder calls `on_released` (the worker frees what torch.compile still holds of them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

from torch import nn

from degrader.decoding.generation import SamplingParams
from degrader.decoding.static_decode import StaticDecoder, bucket


@dataclass(frozen=True)
class DecoderKey:
    """What a StaticDecoder is built for: a change in any field needs another decoder."""

    rows: int  # prompts per unit block
    units: int  # unit blocks per batch (1: the per-unit path)
    prompt_length: int  # prompt tokens, rounded up as StaticDecoder rounds them
    params: SamplingParams
    mode: str | None  # torch.compile mode of the step; None runs it uncompiled (the same shapes, for tests)
    stacks: int  # the generation of the installed unit stacks (WeightState.generation)

    def __post_init__(self):
        if self.rows < 1 or self.units < 1:
            raise ValueError(f"a decoder needs at least 1 row and 1 unit block, got rows={self.rows}, "
                             f"units={self.units}")
        object.__setattr__(self, "prompt_length", bucket(self.prompt_length))

    def serves(self, other: DecoderKey) -> bool:
        """Whether batches of `other` could still use this key's decoder: same settings, no more rows."""
        return replace(self, rows=other.rows) == other and self.rows <= other.rows


class DecoderCache:
    """StaticDecoders of `model` by DecoderKey, each built on first use."""

    def __init__(self, model: nn.Module, on_released: Callable[[], None] = lambda: None, steps: Path | None = None):
        self.model = model
        self.on_released = on_released  # called when an eviction leaves no compiled decoder
        self.steps = steps  # the folder of precompiled steps (StaticDecoder's `steps`); None: compile in-process
        self.decoders: dict[DecoderKey, StaticDecoder] = {}

    def get(self, key: DecoderKey) -> StaticDecoder:
        """The decoder for `key`; decoders it makes useless are evicted before a new one is built."""
        self._evict([k for k in self.decoders if not k.serves(key)])
        if key not in self.decoders:
            self.decoders[key] = StaticDecoder(self.model, key.rows, key.prompt_length, key.params,
                                               compile=key.mode is not None, mode=key.mode or "reduce-overhead",
                                               units=key.units, steps=self.steps)
        return self.decoders[key]

    def ready(self, key: DecoderKey) -> bool:
        """Whether the decoder `get(key)` would return is held and has decoded a batch (compiled, graph recorded)."""
        decoder = self.decoders.get(key)
        return decoder is not None and decoder.decoded

    def retire_stacks(self, generation: int) -> None:
        """Evict the decoders built for other stacks than `generation`'s (WeightState calls it on every change)."""
        self._evict([k for k in self.decoders if k.stacks != generation])

    def clear(self) -> None:
        """Evict every decoder (new prompts or sampling settings: none can serve them)."""
        self._evict(list(self.decoders))

    def _evict(self, keys: list[DecoderKey]) -> None:
        for key in keys:  # the last reference to its KV cache: freed here, before anything new is allocated
            del self.decoders[key]
        if any(key.mode is not None for key in keys) and not self.compiled:
            self.on_released()

    @property
    def compiled(self) -> bool:
        """Whether a compiled decoder is held."""
        return any(key.mode is not None for key in self.decoders)

    def __iter__(self) -> Iterator[DecoderKey]:
        """The keys of the decoders held."""
        return iter(list(self.decoders))

    def __len__(self) -> int:
        return len(self.decoders)
