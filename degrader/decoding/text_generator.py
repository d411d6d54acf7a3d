"""Greedy replies of an undamaged model to many chat prompts: the local LLM judge's decode path (no Ray).

Prompts are grouped by token length rounded up to LENGTH_BUCKET, so the static, compiled decode step
(degrader/decoding/static_decode.py) is built for a handful of shapes per run; each group runs in batches of a
fixed number of rows (a short last batch is padded), sized from free GPU memory. Greedy decoding reads
no random state, so the per-row seeds that `generate` takes are unused.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import torch

from degrader import memory
from degrader.decoding.generation import Generation, SamplingParams, generate, prompt_texts
from degrader.decoding.static_decode import StaticDecoder, bucket
from degrader.models import LoadedModel

logger = logging.getLogger(__name__)
LENGTH_BUCKET = 128  # judge prompts (rubric + an output of up to 350 tokens) fall in a few of these


class TextGenerator:
    """Batches chat prompts by length and decodes them greedily, statically compiled on a GPU.

    `compile_mode` None keeps the static cache and shapes but runs the step uncompiled (CPU tests).
    Each (rows, length, new tokens) is one more compiled variant of the step: prepare a compiled model with
    `edits.prepare_for_decoding(..., static=True)`, which raises dynamo's recompile limit.
    """

    def __init__(self, loaded: LoadedModel, static: bool, max_batch: int, compile_mode: str | None = "reduce-overhead"):
        self.loaded, self.static, self.max_batch, self.compile_mode = loaded, static, max_batch, compile_mode
        self.rows: dict[tuple[int, int], int] = {}  # (prompt bucket, new tokens) -> rows per batch
        self.decoders: dict[tuple[int, int, int], StaticDecoder] = {}  # (rows, prompt bucket, new tokens)

    def generate(self, prompts: list[str], max_new_tokens: int, steps: int | None = None) -> list[Generation]:
        """One greedy generation per prompt, in order.

        `steps`: a warm-up. One batch per prompt length decodes only that many tokens (compiling its step);
        eager batches have nothing to compile; the other prompts get empty generations.
        """
        params = SamplingParams(max_new_tokens, do_sample=False, top_k=None, top_p=None)
        results: list[Generation | None] = [None] * len(prompts)
        for length, indices in self._by_length(prompts).items():
            # a warm-up compiles each length's step once: one batch of that length is enough
            pending = indices if steps is None else indices[: self._rows(length, params)]
            while pending:
                batch = pending[: self._rows(length, params)]
                generations = self._batch([prompts[i] for i in batch], length, params, steps)
                if generations is None:  # out of memory: the rows were halved, try again
                    continue
                for i, generation in zip(batch, generations, strict=True):
                    results[i] = generation
                pending = pending[len(batch):]
        return [r if r is not None else Generation("", 0, 0, 0.0, 0) for r in results]

    def _by_length(self, prompts: list[str]) -> dict[int, list[int]]:
        """Prompt indices by templated token length, rounded up to LENGTH_BUCKET."""
        templated = getattr(self.loaded.processor, "chat_template", None) is not None
        ids = self.loaded.tokenizer(prompt_texts(self.loaded, prompts, False), add_special_tokens=not templated)
        groups: dict[int, list[int]] = defaultdict(list)
        for index, tokens in enumerate(ids["input_ids"]):
            groups[bucket(len(tokens), LENGTH_BUCKET)].append(index)
        return dict(sorted(groups.items()))

    def _rows(self, length: int, params: SamplingParams) -> int:
        """Rows per batch for prompts of `length` tokens: the cap, and on a GPU what free memory holds."""
        key = (length, params.max_new_tokens)
        if key not in self.rows:
            rows = self.max_batch
            if self.loaded.device.type == "cuda":
                free, _ = torch.cuda.mem_get_info(self.loaded.device)
                fits = memory.max_batch(self.loaded.model.config, self.loaded.model.dtype, free,
                                        length + params.max_new_tokens, prefill=length)
                rows = max(1, min(rows, fits))
            self.rows[key] = rows
        return self.rows[key]

    def _batch(self, prompts: list[str], length: int, params: SamplingParams, steps: int | None):
        """The generations of one batch, or None after out of memory (its rows halved for the retry)."""
        rows = self._rows(length, params)
        static = self.static and self._within_window(length + params.max_new_tokens)
        try:
            decoder = self._decoder(rows, length, params) if static else None
            if steps is not None and not static:  # nothing to compile: a warm-up of the eager path is a no-op
                return [Generation("", 0, 0, 0.0, len(prompts)) for _ in prompts]
            return generate(self.loaded, prompts, params, [0] * len(prompts), decoder=decoder, steps=steps)
        except torch.OutOfMemoryError:
            if rows == 1:
                raise
        # outside the except block, so the failed attempt's tensors are freed first
        logger.warning("CUDA out of memory with %d judge prompts of %d tokens: %d rows per batch", rows, length,
                       rows // 2)
        self.rows[(length, params.max_new_tokens)] = rows // 2
        self.decoders.pop((rows, length, params.max_new_tokens), None)
        torch.cuda.empty_cache()
        return None

    def _within_window(self, sequence: int) -> bool:
        """Whether a static cache of `sequence` tokens compiles once: past the sliding window it would recompile at
        every step (degrader/decoding/static_decode.py), so such batches decode eagerly instead."""
        window = getattr(self.loaded.model.config.get_text_config(decoder=True), "sliding_window", None)
        return window is None or sequence <= window

    def _decoder(self, rows: int, length: int, params: SamplingParams) -> StaticDecoder:
        key = (rows, length, params.max_new_tokens)
        if key not in self.decoders:
            self.decoders[key] = StaticDecoder(self.loaded.model, rows, length, params,
                                               compile=self.compile_mode is not None,
                                               mode=self.compile_mode or "reduce-overhead")
        return self.decoders[key]
