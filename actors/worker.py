"""ModelWorker: the lifecycle of one model replica, no Ray: load, snapshot baseline, run a unit.

`ModelActor` (actors/model_actor.py) wraps it for Ray; tests and benchmarks can use it directly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import torch
from PIL import Image

from actors.plan import Unit
from actors.records import make_record, sampling_seed
from actors.vram import BatchSizer, VramMonitor
from configs.experiments import ExperimentConfig
from degrader.baseline import Baseline
from degrader import memory
from degrader.generation import SamplingParams, encode, generate, perplexity
from degrader.groups import resolve_group
from degrader.models import LoadedModel, load_model
from degrader.static_decode import StaticDecoder, bucket

logger = logging.getLogger(__name__)
Emit = Callable[[list[dict]], None]
MODEL_FIELDS = ("model_name", "dtype", "load_in_4bit")  # what a sweep's variants must share
PROMPT_FIELDS = ("prompts", "image_enabled", "image_path", "max_batch_size")  # what decoders are built for


@dataclass(frozen=True)
class UnitReport:
    """What a finished unit sends back to the driver."""

    unit: Unit
    records: int
    tokens: int
    seconds: float


class ModelWorker:
    """One loaded model with its own CPU baseline of the tensors it degrades."""

    def __init__(self, config: ExperimentConfig, device: torch.device, name: str, provenance: dict | None = None,
                 static: bool | None = None, ignore_eos: bool = False, attention: str | None = None,
                 compile_mode: str = "reduce-overhead"):
        self.config, self.device, self.name = config, device, name
        self.provenance = provenance or {}  # where the records were made (e.g. the Ray node)
        # compiled static decoding on GPUs; bitsandbytes 4-bit layers run eager
        self.static = (device.type == "cuda" and not config.load_in_4bit) if static is None else static
        self.params = SamplingParams(config.max_new_tokens, config.do_sample, config.temperature, config.top_k,
                                     config.top_p, ignore_eos)
        self.loaded: LoadedModel | None = None
        self.baseline: Baseline | None = None
        self.decoders: dict[int, StaticDecoder] = {}
        self.attention = attention  # attention implementation override (None: the model's default)
        self.compile_mode = compile_mode

    def load(self) -> dict:
        """Load the model and prepare the config's variant; returns the model's description."""
        started = time.perf_counter()
        cfg = self.config
        self.loaded = load_model(cfg.model_name, cfg.dtype, self.device, cfg.load_in_4bit)
        if self.attention:
            self.loaded.model.set_attn_implementation(self.attention)
        logger.info("loaded %s on %s in %.1fs", self.loaded.name, self.device, time.perf_counter() - started)
        self.prepare(cfg, force=True)
        return self.loaded.description

    def prepare(self, config: ExperimentConfig, force: bool = False) -> None:
        """Switch to `config`, a variant for the same model (group, method, levels, task), without reloading.

        The previous variant's baseline is restored first, so the new one is taken from clean weights.
        Decoders and the batch size are kept while the prompts and sampling settings stay the same.
        """
        if any(getattr(config, f) != getattr(self.config, f) for f in MODEL_FIELDS):
            raise ValueError(f"a variant must use the same loaded model ({', '.join(MODEL_FIELDS)} fixed)")
        same_prompts = not force and all(getattr(config, f) == getattr(self.config, f) for f in PROMPT_FIELDS)
        params = SamplingParams(config.max_new_tokens, config.do_sample, config.temperature, config.top_k,
                                config.top_p, self.params.ignore_eos)
        self.config = config
        if self.loaded is None:
            return  # load() prepares it
        if self.baseline is not None:
            self.baseline.restore()
        self.baseline = Baseline(resolve_group(self.loaded.model, config.param_group_name))
        if not (same_prompts and params == self.params):
            self._prepare_prompts(config, params)
        logger.info("variant %s: %s on %s = %d tensors, baseline %.1f MB", config.name_suffix,
                    config.degradation_method, config.param_group_name, len(self.baseline.targets),
                    self.baseline.nbytes / 1e6)

    def _prepare_prompts(self, config: ExperimentConfig, params: SamplingParams) -> None:
        self.params, self.decoders = params, {}
        self.image = Image.open(config.image_path).convert("RGB") if config.image_enabled else None
        texts = [p.text for p in config.prompts]
        self.prompt_length = encode(self.loaded, texts, self.image)["input_ids"].shape[1]
        self.sizer = BatchSizer(self._first_batch_size(len(texts)), VramMonitor(self.device))

    def _first_batch_size(self, n_prompts: int) -> int:
        """The most prompts that fit: the config's cap, and on a GPU its free memory."""
        cap = min(self.config.max_batch_size, n_prompts)
        if self.device.type != "cuda":
            return cap
        free, _ = torch.cuda.mem_get_info(self.device)
        sequence = bucket(self.prompt_length) + self.config.max_new_tokens
        return max(1, min(cap, memory.max_batch(self.loaded.model.config, self.loaded.model.dtype, free, sequence)))

    def decoder(self, batch_size: int) -> StaticDecoder | None:
        """The compiled static decoder for `batch_size` rows (built once), or None for eager decoding."""
        if not self.static:
            return None
        if batch_size not in self.decoders:
            self.decoders[batch_size] = StaticDecoder(self.loaded.model, batch_size, self.prompt_length, self.params,
                                                      mode=self.compile_mode)
        return self.decoders[batch_size]

    def run_unit(self, unit: Unit, emit: Emit) -> UnitReport:
        """Restore, degrade with the unit's seed, generate the unit's prompts batch by batch."""
        started = time.perf_counter()
        seed = self.config.seed + unit.repeat_index
        self.baseline.restore()
        self.baseline.degrade(self.config.degradation_method, unit.level, seed)
        runtime = {"actor": self.name, "device": str(self.device), **self.provenance}
        if self.config.compute_perplexity:
            runtime["perplexity"] = perplexity(self.loaded, self.config.perplexity_text)
        records, tokens = self.generate_unit(unit, runtime, emit)
        return UnitReport(unit, records, tokens, time.perf_counter() - started)

    def generate_unit(self, unit: Unit, runtime: dict, emit: Emit) -> tuple[int, int]:
        """Generate the unit's prompts batch by batch (weights already degraded); returns records, tokens."""
        pending, records, tokens = list(unit.prompt_ids), 0, 0
        while pending:
            batch = pending[: self.sizer.size]
            generations = self._generate_batch(unit, batch)
            vram = {"vram_usage_percent": self.sizer.after_batch()}
            emit([make_record(self.config, self.loaded, unit, i, g, {**runtime, **vram})
                  for i, g in zip(batch, generations)])
            pending = pending[len(batch):]
            records += len(batch)
            tokens += sum(g.tokens_out for g in generations)
        return records, tokens

    def _generate_batch(self, unit: Unit, prompt_ids: list[int]):
        cfg = self.config
        prompts = [cfg.prompts[i] for i in prompt_ids]
        seeds = [sampling_seed(cfg, unit.repeat_index, p) for p in prompts]
        try:
            return generate(self.loaded, [p.text for p in prompts], self.params, seeds, self.image,
                            self.decoder(self.sizer.size))
        except torch.OutOfMemoryError:
            if len(prompt_ids) == 1:
                raise
            self.sizer.after_oom()
        # retried outside the except block, so the failed attempt's tensors are freed first; decoders
        # sized for more rows than now fit are dropped with their caches
        self.decoders = {size: d for size, d in self.decoders.items() if size <= self.sizer.size}
        generations, rest = [], prompt_ids
        while rest:  # the size may shrink again inside, so chunks are cut one at a time
            chunk, rest = rest[: self.sizer.size], rest[self.sizer.size:]
            generations += self._generate_batch(unit, chunk)
        return generations
