"""Every change made to a model and to the process for fast decoding, recorded by one object that undoes it.

Fast decoding edits more than the weights: it fuses projections (forward hooks, parameters turned into
views of one buffer: degrader/decoding/fused.py), registers attention functions in transformers' global
registries and switches the model to them (degrader/decoding/attention.py), and raises dynamo's
process-wide recompile limit for the compiled decode steps (degrader/decoding/static_decode.py).
`ModelEdits` records each change with its undo, like TransformerLens' hook points: `undo()` (or leaving a
`with` block) reverts them newest first, and `prepare_for_decoding` makes the changes a worker makes
after loading a model.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from degrader.decoding.attention import NAME, SPLIT_KV_NAME, use_grouped_decode_attention
from degrader.decoding.fused import Fusion, fuse_projections

RECOMPILE_LIMIT = 64  # compiled variants of the decode step: one per decoder (batch size, prompts, sampling)
_ABSENT = object()  # a registry had no entry under a name


class ModelEdits:
    """The decoding edits of one model, newest last; `undo()` reverts them newest first.

    Undo after dropping compiled decoders (their graphs read the fused buffer) and rep stacks. Parameters
    keep their identity through fusing and undoing, so a Baseline holding them stays valid throughout.
    """

    def __init__(self):
        self._undos: list[tuple[str, Callable[[], None]]] = []
        self.fusion: Fusion | None = None  # the fused projections, while they are fused

    @property
    def recorded(self) -> list[str]:
        """What is currently edited, oldest first."""
        return [what for what, _ in self._undos]

    def record(self, what: str, undo: Callable[[], None]) -> None:
        """Remember an edit just made and how to revert it."""
        self._undos.append((what, undo))

    def undo(self) -> None:
        """Revert every recorded edit, newest first (one that raises stays recorded, with those before it)."""
        while self._undos:
            _, undo = self._undos[-1]
            undo()
            self._undos.pop()

    def __enter__(self) -> ModelEdits:
        return self

    def __exit__(self, *exc_info) -> None:
        self.undo()

    def fuse(self, model: nn.Module) -> Fusion:
        """Fuse the model's projections (fused.fuse_projections); undone by unfusing them."""
        self.fusion = fuse_projections(model)
        self.record("fused projections", self._unfuse)
        return self.fusion

    def _unfuse(self) -> None:
        self.fusion.undo()
        self.fusion = None

    def set_attention(self, model: nn.Module, implementation: str) -> None:
        """Switch the model to a registered attention implementation; undone by switching back."""
        previous = model.config._attn_implementation
        model.set_attn_implementation(implementation)
        self.record(f"attention {implementation}", lambda: model.set_attn_implementation(previous))

    def grouped_attention(self, model: nn.Module, split_kv: bool | None = None) -> bool:
        """attention.use_grouped_decode_attention, recorded; False (nothing changed) for a model without SDPA."""
        previous = model.config._attn_implementation
        entries = _registry_entries()
        if not use_grouped_decode_attention(model, split_kv):
            return False

        def undo() -> None:
            model.set_attn_implementation(previous)
            _restore_registry_entries(entries)

        self.record(f"attention {model.config._attn_implementation}", undo)
        return True

    def raise_recompile_limit(self, limit: int = RECOMPILE_LIMIT) -> None:
        """Let dynamo compile at least `limit` variants of a function before it falls back to eager (process-wide)."""
        config = torch._dynamo.config
        previous = config.cache_size_limit
        config.cache_size_limit = max(previous, limit)
        self.record(f"dynamo cache_size_limit {config.cache_size_limit}",
                    lambda: setattr(config, "cache_size_limit", previous))


def prepare_for_decoding(model: nn.Module, attention: str | None, static: bool) -> ModelEdits:
    """The edits a worker makes after loading: attention, fused projections, and for `static` the recompile limit.

    `attention` None picks grouped decode attention where the model uses SDPA (its split-KV kernel only for
    `static`: eager steps would pay the kernel's Python launch); NAME / SPLIT_KV_NAME require SDPA; any other
    name is set as the model's implementation. Fuse before taking the baseline: it holds the fused views.
    """
    edits = ModelEdits()
    try:
        if attention in (None, SPLIT_KV_NAME, NAME):  # no per-step copy of the KV cache per query head
            split_kv = attention == SPLIT_KV_NAME if attention else (None if static else False)
            if not edits.grouped_attention(model, split_kv) and attention:
                raise ValueError(f"attention={attention!r} needs a model that uses SDPA attention")
        else:
            edits.set_attention(model, attention)
        edits.fuse(model)
        if static:  # every StaticDecoder is one more compiled variant of its step
            edits.raise_recompile_limit()
    except BaseException:
        edits.undo()
        raise
    return edits


def _registries() -> list[dict]:
    """transformers' process-wide attention and mask registries (their class-level mappings)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    return [AttentionInterface._global_mapping, AttentionMaskInterface._global_mapping]


def _registry_entries() -> list[tuple[dict, str, object]]:
    """What each registry holds now under the names use_grouped_decode_attention registers."""
    names = (NAME, SPLIT_KV_NAME)
    return [(registry, name, registry.get(name, _ABSENT)) for registry in _registries() for name in names]


def _restore_registry_entries(entries: list[tuple[dict, str, object]]) -> None:
    """Put back what `_registry_entries` saw: entries that were absent are removed again.

    The registries are shared by every model of the process: undo a model's attention only when no other
    model still decodes with these names."""
    for registry, name, entry in entries:
        if entry is _ABSENT:
            registry.pop(name, None)
        else:
            registry[name] = entry
