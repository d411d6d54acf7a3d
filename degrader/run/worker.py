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

from degrader.decoding.text_generator import TextGenerator
from degrader.run.plan import Unit, total_units
from degrader.run.records import make_record, sampling_seed
from degrader.run.vram import BatchSizer, VramMonitor
from configs.experiments import ExperimentConfig
from degrader.decoding.attention import NAME, SPLIT_KV_NAME, use_grouped_decode_attention
from degrader.baseline import Baseline
from degrader.decoding.fused import Fusion, fuse_projections
from degrader import memory
from degrader.decoding.generation import Generation, SamplingParams, encode, generate, perplexities
from degrader.groups import resolve_group
from degrader.models import LoadedModel, load_model
from degrader.decoding.rep_batch import UnitStacks, unsupported_reason
from degrader.decoding.static_decode import StaticDecoder, bucket
from degrader.seeding import repetition_seed

logger = logging.getLogger(__name__)
Emit = Callable[[list[dict]], None]
MODEL_FIELDS = ("model_name", "dtype", "load_in_4bit")  # what a sweep's variants must share
PROMPT_FIELDS = ("prompts", "image_enabled", "image_path", "max_batch_size")  # what decoders are built for
WARM_UP_STEPS = 4  # 3 calls of the compiled step: "reduce-overhead" compiles on the first, records its CUDA graph by the third


@dataclass(frozen=True)
class UnitReport:
    """What a finished unit sends back to the driver."""

    unit: Unit
    records: int
    tokens: int
    seconds: float


def sampling_params(config: ExperimentConfig, ignore_eos: bool) -> SamplingParams:
    """How the config chooses tokens (`ignore_eos`: decode max_new_tokens for every row, for benchmarks)."""
    return SamplingParams(config.max_new_tokens, config.do_sample, config.temperature, config.top_k, config.top_p,
                          ignore_eos)


class ModelWorker:
    """One loaded model with its own CPU baseline of the tensors it degrades."""

    def __init__(self, config: ExperimentConfig, device: torch.device, name: str, provenance: dict | None = None,
                 static: bool | None = None, ignore_eos: bool = False, attention: str | None = None,
                 compile_mode: str = "reduce-overhead"):
        self.config, self.device, self.name = config, device, name
        self.provenance = provenance or {}  # where the records were made (e.g. the Ray node)
        # compiled static decoding on GPUs; bitsandbytes 4-bit layers run eager
        self.static = (device.type == "cuda" and not config.load_in_4bit) if static is None else static
        self.params = sampling_params(config, ignore_eos)
        self.loaded: LoadedModel | None = None
        self.fusion: Fusion | None = None  # q|k|v and gate|up as one product each (degrader/decoding/fused.py)
        self.baseline: Baseline | None = None
        self.decoders: dict[int, StaticDecoder] = {}  # by prompts per unit; dropped whenever the stacks change
        self.stacks: UnitStacks | None = None  # per-unit copies of the group while rep-batching
        self.max_units = 1  # the most units one batch may decode: the config's request and what fits in memory
        self.attention = attention  # attention implementation override (None: the model's default)
        self.compile_mode = compile_mode
        self.texts: TextGenerator | None = None  # the judge's decode path (generate_texts), built on first use

    def load(self) -> dict:
        """Load the model and prepare the config's variant; returns the model's description."""
        started = time.perf_counter()
        cfg = self.config
        self.loaded = load_model(cfg.model_name, cfg.dtype, self.device, cfg.load_in_4bit)
        self.texts = None
        if self.attention in (None, SPLIT_KV_NAME, NAME):  # no per-step copy of the KV cache per query head
            # the kernel by default only where CUDA graphs replay it: eager steps would pay its Python launch
            split_kv = self.attention == SPLIT_KV_NAME if self.attention else (None if self.static else False)
            if not use_grouped_decode_attention(self.loaded.model, split_kv) and self.attention:
                raise ValueError(f"attention={self.attention!r} needs a model that uses SDPA attention")
        else:
            self.loaded.model.set_attn_implementation(self.attention)
        self.fusion = fuse_projections(self.loaded.model)  # before the baseline: it holds the fused views
        if self.device.type == "cuda":  # the replaced weights' memory, before free memory sizes the batches
            torch.cuda.empty_cache()
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
        params = sampling_params(config, self.params.ignore_eos)
        self.config = config
        if self.loaded is None:
            return  # load() prepares it
        self._drop_stacks()
        if self.baseline is not None:
            self.baseline.restore()
        self.baseline = Baseline(resolve_group(self.loaded.model, config.param_group_name))
        if not (same_prompts and params == self.params):
            self._prepare_prompts(config, params)
        self.max_units = self._planned_units(config)
        logger.info("variant %s: %s on %s = %d tensors, baseline %.1f MB, units per batch: at most %d",
                    config.name_suffix, config.degradation_method, config.param_group_name,
                    len(self.baseline.targets), self.baseline.nbytes / 1e6, self.max_units)

    @property
    def units_per_batch(self) -> int:
        """How many units the installed stacks decode per batch (1: the per-unit path)."""
        return self.stacks.units if self.stacks is not None else 1

    def _drop_stacks(self) -> None:
        if self.stacks is not None:
            self.stacks.uninstall()
            self.stacks, self.decoders = None, {}
            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def fit_stacks(self, n_units: int) -> None:
        """Stacks for `n_units` units (at most max_reps); kept when they already hold as many or more.

        The warm-up sizes them for the driver's batch size, so an actor allocates its copies (and compiles
        its decoder) once: a smaller batch is padded rather than recompiled.
        """
        wanted = min(n_units, self.max_units)
        if wanted > self.units_per_batch:  # so wanted > 1
            self._drop_stacks()
            self.baseline.restore()  # the copies' source: the per-unit path may have left the live weights degraded
            self.stacks = UnitStacks(self.loaded.model, self.baseline.targets, wanted)
            self.stacks.install()
            self.decoders = {}  # the per-unit decoders' rows no longer fit the installed stacks

    def _planned_units(self, config: ExperimentConfig) -> int:
        """Units per batch at most: the config's request (0 = auto) and what fits in memory."""
        requested, n_units = config.units_per_batch, total_units(config)
        reason = unsupported_reason(self.loaded.model, self.baseline.targets)
        if requested == 1 or n_units == 1 or reason is not None:
            if reason is not None and requested != 1:
                logger.info("one repetition per batch: %s", reason)
            return 1
        if self.device.type != "cuda":  # no memory to share out on the CPU; explicit requests only
            return memory.planned_units(n_units, requested, fits=requested or 1)
        free, _ = torch.cuda.mem_get_info(self.device)
        sequence = bucket(self.prompt_length) + self.params.max_new_tokens
        fits = memory.max_units(self.loaded.model.config, self.loaded.model.dtype, free,
                               sequence, self.sizer.size, self.baseline.nbytes)
        return memory.planned_units(n_units, requested, fits)

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
        """The compiled static decoder for `batch_size` prompts per unit (built once), or None (eager)."""
        if not self.static:
            return None
        if batch_size not in self.decoders:
            self.decoders[batch_size] = StaticDecoder(self.loaded.model, batch_size, self.prompt_length, self.params,
                                                      mode=self.compile_mode, units=self.units_per_batch)
        return self.decoders[batch_size]

    def generate_texts(self, prompts: list[str], max_new_tokens: int, steps: int | None = None) -> list[Generation]:
        """Greedy replies of the undamaged model to chat prompts, in order (a local LLM judge; nothing emitted).

        No lesion and no rep-batching: the stacks are dropped and the baseline restored first.
        `steps`: decode only that many tokens (a warm-up that compiles each prompt length's step).
        """
        self._drop_stacks()
        self.baseline.restore()
        if self.texts is None:
            self.texts = TextGenerator(self.loaded, self.static, self.config.max_batch_size, self.compile_mode)
        return self.texts.generate(prompts, max_new_tokens, steps)

    def warm_up(self, n_units: int) -> None:
        """Size the stacks for batches of `n_units` and compile the decode step on a few steps (nothing emitted)."""
        self._with_stacks(n_units, self._compile)

    def _compile(self) -> None:
        if self.static:  # a batch as run_units decodes it (out of memory shrinks it the same way), cut short
            prompt_ids = tuple(range(self.sizer.size))
            self._generate_batch([Unit(self.config.levels[0], 0, prompt_ids)], list(prompt_ids), steps=WARM_UP_STEPS)

    def run_units(self, units: list[Unit], emit: Emit) -> list[UnitReport]:
        """Run units (any levels) with the same prompts, up to max_reps at a time (one at a time without stacks)."""
        reports, pending = [], list(units)
        while pending:
            reports += self._with_stacks(len(pending), lambda: self._run_batch(pending[: self.units_per_batch], emit))
            pending = units[len(reports):]
        return reports

    def _with_stacks(self, n_units: int, attempt: Callable):
        """attempt() with stacks for up to `n_units` units; out of memory (copies or decoding) halves them and retries.

        Records already sent by a failed attempt are deduplicated by the writer.
        """
        while True:
            try:
                self.fit_stacks(n_units)
                return attempt()
            except torch.OutOfMemoryError:
                tried = max(self.units_per_batch, min(n_units, self.max_units))  # fit_stacks drops the stacks it cannot fill
                if tried == 1:  # even one prompt of one unit does not fit
                    raise
            # outside the except block, so the failed attempt's tensors are freed first
            logger.warning("CUDA out of memory at one prompt per unit: units per batch %d instead of %d",
                           tried // 2, tried)
            self.max_units = tried // 2
            self._drop_stacks()

    def lesion(self, units: list[Unit]) -> None:
        """Degrade for `units`: the live weights for one unit, or each unit's copies when rep-batching."""
        seeds = [repetition_seed(self.config.seed, unit.repeat_index) for unit in units]
        if self.stacks is None:
            self.baseline.restore()
            self.baseline.degrade(self.config.degradation_method, units[0].level, seeds[0])
        else:  # the live weights stay clean while the copies are installed: they are the copies' source
            self.stacks.degrade(self.config.degradation_method, [unit.level for unit in units], seeds)

    def _run_batch(self, units: list[Unit], emit: Emit) -> list[UnitReport]:
        """Up to `units_per_batch` units: lesion, perplexity when asked for, the prompts batch by batch."""
        if len({u.prompt_ids for u in units}) != 1 or len(units) > self.units_per_batch:
            raise ValueError(f"a batch takes at most {self.units_per_batch} units with the same prompts")
        started = time.perf_counter()
        self.lesion(units)
        values = (perplexities(self.loaded, self.config.perplexity_text, self.units_per_batch)[: len(units)]
                  if self.config.compute_perplexity else [])
        records, tokens = self.generate_units(units, self._runtime(units, values), emit)
        seconds = time.perf_counter() - started
        return [UnitReport(u, n, t, seconds) for u, n, t in zip(units, records, tokens)]

    def _runtime(self, units: list[Unit], perplexities: list[float]) -> list[dict]:
        """Per unit: where its records were made, and its perplexity when the config asks for it."""
        runtime = {"actor": self.name, "device": str(self.device), "reps_in_batch": len(units), **self.provenance}
        if not perplexities:
            return [dict(runtime) for _ in units]
        return [{**runtime, "perplexity": value} for value in perplexities]

    def generate_units(self, units: list[Unit], runtimes: list[dict], emit: Emit) -> tuple[list[int], list[int]]:
        """Generate the units' prompts batch by batch (weights already in place); records and tokens per unit."""
        pending, records, tokens = list(units[0].prompt_ids), [0] * len(units), [0] * len(units)
        while pending:
            batch = pending[: self.sizer.size]
            generations = self._generate_batch(units, batch)
            vram = {"vram_usage_percent": self.sizer.after_batch()}
            for r, (unit, runtime) in enumerate(zip(units, runtimes)):
                mine = generations[r * len(batch): (r + 1) * len(batch)]
                emit([make_record(self.config, self.loaded, unit, i, g, {**runtime, **vram})
                      for i, g in zip(batch, mine)])
                records[r] += len(batch)
                tokens[r] += sum(g.tokens_out for g in mine)
            pending = pending[len(batch):]
        return records, tokens

    def _generate_batch(self, units: list[Unit], prompt_ids: list[int], steps: int | None = None):
        """Generations ordered by unit block: units[0]'s prompts, then units[1]'s, ... (`steps`: a warm-up)."""
        cfg = self.config
        prompts = [cfg.prompts[i] for i in prompt_ids]
        seeds = [sampling_seed(cfg, u.repeat_index, p) for u in units for p in prompts]
        seeds += seeds[-len(prompts):] * (self.units_per_batch - len(units))  # padding blocks repeat the last unit
        try:
            generations = generate(self.loaded, [p.text for p in prompts], self.params, seeds, self.image,
                                   self.decoder(self.sizer.size), units=self.units_per_batch, steps=steps)
            return generations[: len(units) * len(prompts)]
        except torch.OutOfMemoryError:
            if len(prompt_ids) == 1:
                raise
            self.sizer.after_oom()
        # retried outside the except block, so the failed attempt's tensors are freed first; decoders
        # sized for more rows than now fit are dropped with their caches
        self.decoders = {size: d for size, d in self.decoders.items() if size <= self.sizer.size}
        chunks, rest = [], prompt_ids
        while rest:  # the size may shrink again inside, so chunks are cut one at a time
            chunk, rest = rest[: self.sizer.size], rest[self.sizer.size:]
            chunks.append((chunk, self._generate_batch(units, chunk, steps)))
        # back to the block order of the whole batch: unit by unit, prompts in order
        return [g for r in range(len(units)) for chunk, gens in chunks for g in gens[r * len(chunk): (r + 1) * len(chunk)]]
