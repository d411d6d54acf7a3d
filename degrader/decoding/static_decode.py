"""Static-shape decoding: a KV cache of fixed size and a compiled decode step, built once per model.

Every batch is padded to `batch_size` rows and every prompt left-padded to `prompt_length` tokens,
so all units of an experiment share one shape: the decode step compiles (torch.compile with CUDA
graphs, "reduce-overhead") once per actor, not once per unit. Weights are only ever changed in
place (baseline restore, degradation), so the captured graphs stay valid across units. Rows and
tokens are chosen by the same loop as `generation.decode` (`generation.token_loop`): the two paths give
the same tokens. Every decoder is one more compiled variant of `_step`: past dynamo's default of 8 it
would fall back to eager, so `edits.prepare_for_decoding(..., static=True)` raises that limit (undoably);
this class changes no process-wide setting.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch

from degrader.decoding.generation import SamplingParams, cache_argument, choose_tokens, token_loop
from degrader.decoding.precompile import PrecompiledStep

logger = logging.getLogger(__name__)
STOP_CHECK_EVERY = 16  # steps between host syncs that test whether every row has stopped
LENGTH_BUCKET = 16  # prompt lengths round up to this: the cache is read whole at every step


def bucket(length: int, size: int = LENGTH_BUCKET) -> int:
    """`length` rounded up to a multiple of `size` (prompt lengths share a few shapes)."""
    return -(-length // size) * size


def static_cache(config, length: int):
    """A StaticCache of `length` tokens, and whether it keeps sliding-window layers (`length` past the window).

    Plain (full) layers where the sliding window never fills: transformers' sliding-window static layer
    tracks its length in a Python int, which makes torch.compile recompile at every step; while `length` <=
    the window the window never truncates, so a full static layer is equivalent and compiles once.
    """
    from transformers import StaticCache
    from transformers.cache_utils import StaticLayer

    cache = StaticCache(config=config, max_cache_len=length)
    window = getattr(config.get_text_config(decoder=True), "sliding_window", None)
    if window is None or length <= window:
        cache.layers = [StaticLayer(max_cache_len=length) for _ in cache.layers]
        return cache, False
    logger.warning("prompt + new tokens (%d) exceed the sliding window (%d): the compiled decode step will "
                   "recompile at every step; use fewer max_new_tokens or eager decoding", length, window)
    return cache, True


class StaticDecoder:
    """Decodes `units` blocks of at most `batch_size` rows with prompts of at most `prompt_length` tokens.

    `units` > 1 is rep-batching: the batch is `units` blocks, one per repetition, each padded on its own
    so that block r always occupies rows [r * batch_size, (r + 1) * batch_size).
    `steps`: a folder of precompiled steps (precompile.py): the compiled step is loaded from there, or saved
    there once compiled, so that another process skips dynamo's tracing; None compiles it in-process only.
    """

    def __init__(self, model, batch_size: int, prompt_length: int, params: SamplingParams, compile: bool = True,
                 mode: str = "reduce-overhead", units: int = 1, steps: Path | None = None):
        self.model, self.batch_size, self.params, self.units = model, batch_size, params, units
        self.prompt_length = bucket(prompt_length)
        self.cache, windowed = static_cache(model.config, self.prompt_length + params.max_new_tokens)
        self.cache_key = cache_argument(model)
        self.decoded = False  # whether a decode() has finished: its step compiled, its CUDA graph recorded
        # The plain function, not the bound method: a decoder holding a callable bound to itself is a reference
        # cycle, and its KV cache (gigabytes on a GPU) would outlive its eviction until the cycle collector ran.
        step = StaticDecoder._step
        if not compile:
            self._step_impl = step
        elif steps is not None and not windowed:  # a windowed cache recompiles at every step: nothing to save
            self._step_impl = PrecompiledStep(step, mode, steps)
        else:
            self._step_impl = torch.compile(step, mode=mode, dynamic=False)

    @property
    def step_loaded(self) -> bool:
        """Whether the compiled step was loaded from a precompiled file (no tracing, no compile)."""
        return isinstance(self._step_impl, PrecompiledStep) and self._step_impl.loaded

    def step_fn(self, token, positions, cache_position, mask, row_seeds, step):
        """One decode step: the compiled step, or `_step` itself where the decoder is not compiled."""
        return self._step_impl(self, token, positions, cache_position, mask, row_seeds, step)

    def _step(self, token, positions, cache_position, mask, row_seeds, step):
        logits = self.model(input_ids=token, position_ids=positions, cache_position=cache_position,
                            attention_mask=mask, use_cache=True, **{self.cache_key: self.cache}).logits
        return choose_tokens(logits[:, -1], self.params, row_seeds, step)

    def pad(self, inputs: dict[str, torch.Tensor], row_seeds: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Left-pad to prompt_length and repeat each block's last row up to batch_size rows per block."""
        rows, length = inputs["input_ids"].shape
        if rows % self.units or rows // self.units > self.batch_size or length > self.prompt_length:
            raise ValueError(f"batch {rows}x{length} does not fit the decoder's {self.units} blocks of "
                             f"{self.batch_size}x{self.prompt_length}")
        padded = {}
        for key, value in inputs.items():
            if value.dim() == 2 and value.shape[1] == length:  # token-aligned: ids, mask, token types
                value = torch.nn.functional.pad(value, (self.prompt_length - length, 0), value=0)
            padded[key] = self._pad_blocks(value)
        return padded, self._pad_blocks(row_seeds)

    def _pad_blocks(self, value: torch.Tensor) -> torch.Tensor:
        blocks = value.reshape(self.units, -1, *value.shape[1:])
        filler = blocks[:, -1:].expand(-1, self.batch_size - blocks.shape[1], *value.shape[1:])
        return torch.cat([blocks, filler], dim=1).reshape(-1, *value.shape[1:])

    @torch.inference_mode()
    def decode(self, inputs: dict[str, torch.Tensor], row_seeds: torch.Tensor, stop_ids: Sequence[int],
               pad_id: int, steps: int | None = None) -> torch.Tensor:
        """New token ids [rows, T] for the real rows, padded with `pad_id` after they stop.

        `steps` < max_new_tokens stops early (a warm-up: the step compiles and its CUDA graph is recorded)."""
        per_block = inputs["input_ids"].shape[0] // self.units
        inputs, seeds = self.pad(inputs, row_seeds)
        self.cache.reset()
        mask = torch.nn.functional.pad(inputs["attention_mask"], (0, self.params.max_new_tokens), value=1)
        positions = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        logits = self.model(**inputs, position_ids=positions, use_cache=True, logits_to_keep=1,
                            **{self.cache_key: self.cache}).logits
        token = choose_tokens(logits[:, -1], self.params, seeds, 0)
        new_tokens = self._loop(token, positions[:, -1:], mask, seeds, stop_ids, pad_id,
                                min(steps or self.params.max_new_tokens, self.params.max_new_tokens))
        self.decoded = True
        return new_tokens.reshape(self.units, self.batch_size, -1)[:, :per_block].reshape(self.units * per_block, -1)

    def _loop(self, token, position, mask, seeds, stop_ids, pad_id, n_steps: int) -> torch.Tensor:
        # Step indices and cache positions live on the device: no host-to-device copy (and so no
        # implicit sync) per step, so the CPU queues step k+1 while the GPU runs step k.
        step_ids = torch.arange(n_steps + 1, device=token.device)
        cache_positions = step_ids + self.prompt_length

        def next_token(previous: torch.Tensor, step: int) -> torch.Tensor:
            nonlocal position
            position = position + 1
            return self.step_fn(previous[:, None], position, cache_positions[step - 1: step], mask, seeds,
                                step_ids[step]).clone()

        return token_loop(token, next_token, n_steps, stop_ids, pad_id, self.params.ignore_eos, STOP_CHECK_EVERY)
