"""ModelWorker: the lifecycle of one model replica, no Ray: load, prepare a variant, warm up, run units.

Each phase is a few lines over parts with one job each: the degraded weights (weights.py), the batch
plan and its out-of-memory policy (batch_plan.py), the compiled decoders (decoder_cache.py) and the
records (records.py). `ModelActor` (actors/model_actor.py) wraps it for Ray; tests and benchmarks use
it directly.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from degrader.decoding.edits import ModelEdits, prepare_for_decoding
from degrader.decoding.fused import Fusion
from degrader.decoding.generation import Generation, SamplingParams, generate, perplexities
from degrader.decoding.repeatable import make_repeatable
from degrader.decoding.static_decode import StaticDecoder, bucket
from degrader.decoding.text_generator import TextGenerator
from degrader.groups import resolve_group
from degrader.models import LoadedModel, load_model
from degrader.run.batch_plan import BatchPlan, Halving, PromptSet
from degrader.run.decoder_cache import DecoderCache, DecoderKey
from degrader.run.plan import Unit, group_batch_sizes, total_units
from degrader.run.records import RecordBuilder, UnitReport, sampling_seed
from degrader.run.weights import WeightState

if TYPE_CHECKING:  # configs builds on degrader: only type checkers may read it from here (tests/test_layers.py)
    from configs.experiments import ExperimentConfig

__all__ = ["ModelWorker", "UnitReport", "sampling_params"]
logger = logging.getLogger(__name__)
Emit = Callable[[list[dict]], None]
# 3 calls of the compiled step: "reduce-overhead" compiles on the first, records its CUDA graph by the third
WARM_UP_STEPS = 4
STEPS_FOLDER = "steps"  # precompiled decode steps, inside the model's compile cache folder


def sampling_params(config: ExperimentConfig, ignore_eos: bool) -> SamplingParams:
    """How the config chooses tokens (`ignore_eos`: decode max_new_tokens for every row, for benchmarks)."""
    return SamplingParams(config.max_new_tokens, config.do_sample, config.temperature, config.top_k, config.top_p,
                          ignore_eos)


class ModelWorker:
    """One loaded model with its own CPU baseline of the tensors it degrades."""

    def __init__(self, config: ExperimentConfig, device: torch.device, name: str, provenance: dict | None = None,
                 static: bool | None = None, ignore_eos: bool = False, attention: str | None = None,
                 compile_mode: str | None = "reduce-overhead"):
        self.config, self.device, self.name = config, device, name
        self.provenance = provenance or {}  # where the records were made (e.g. the Ray node)
        # compiled static decoding on GPUs; bitsandbytes 4-bit layers run eager
        self.static = (device.type == "cuda" and not config.load_in_4bit) if static is None else static
        self.attention = attention  # attention implementation override (None: the model's default)
        self.compile_mode = compile_mode  # of the static decode step; None: static shapes, uncompiled
        self.params = sampling_params(config, ignore_eos)
        self.plan = BatchPlan(device)  # prompts and units per batch
        self.loaded: LoadedModel | None = None  # the phases below create the rest
        self.edits: ModelEdits | None = None  # attention, fused projections, dynamo's limit (decoding/edits.py)
        self.fusion: Fusion | None = None  # q|k|v and gate|up as one product each (degrader/decoding/fused.py)
        self.weights: WeightState | None = None  # the degraded group: baseline, stacks, lesions
        self.decoders: DecoderCache | None = None  # compiled static decoders (static only)
        self.prompts: PromptSet | None = None  # the variant's picture and prompt length
        self.texts: TextGenerator | None = None  # the judge's decode path (generate_texts), built on first use
        self.steps: Path | None = None  # where compiled decode steps are saved and loaded (keep_steps_in)

    def load(self) -> dict:
        """Load the model and prepare the config's variant; returns the model's description.

        On a CUDA device it first makes the whole process's GPU numbers repeatable (deterministic algorithms, a
        fixed cuBLAS workspace: decoding/repeatable.py), for the records and for any benchmark of this worker."""
        started = time.perf_counter()
        cfg = self.config
        if self.device.type == "cuda":  # before the first GPU product; on the CPU records repeat without it
            make_repeatable()
        self.loaded = load_model(cfg.model_name, cfg.dtype, self.device, cfg.load_in_4bit)
        self._edit_model()
        self.decoders = DecoderCache(self.loaded.model, self._release_compiled, self.steps)
        self.weights = WeightState(self.loaded.model, self.device, self.decoders.retire_stacks)
        self.prompts = self.texts = None
        logger.info("loaded %s on %s in %.1fs", self.loaded.name, self.device, time.perf_counter() - started)
        self.prepare(cfg)
        return self.loaded.description

    def keep_steps_in(self, compile_cache: Path) -> None:
        """Save each compiled decode step under `compile_cache` (the model's keyed compile cache folder) and load
        it from there in later processes, without tracing it again (degrader/decoding/precompile.py)."""
        self.steps = Path(compile_cache) / STEPS_FOLDER
        if self.decoders is not None:
            self.decoders.steps = self.steps

    def _edit_model(self) -> None:
        """The attention implementation and the fused projections (before any baseline: it holds the fused views)."""
        self.edits = prepare_for_decoding(self.loaded.model, self.attention, self.static)
        self.fusion = self.edits.fusion
        if self.device.type == "cuda":  # the replaced weights' memory, before free memory sizes the batches
            torch.cuda.empty_cache()

    def prepare(self, config: ExperimentConfig) -> None:
        """Switch to `config`, a variant for the same model (group, method, levels, task), without reloading.

        The previous variant's baseline is restored first, so the new one is taken from clean weights. A variant
        of the same group keeps the group's unit stacks, and so the decoders compiled for them (no new compile);
        decoders and the prompts per batch are kept while the prompts and sampling settings stay the same.
        """
        if config.model != self.config.model:
            raise ValueError("a variant must use the same loaded model "
                             f"({self.config.model} fixed, got {config.model})")
        same_prompts = self.prompts is not None and config.decoding_key() == self.config.decoding_key()
        same_group = self.weights is not None and self.weights.baseline is not None and (
            config.param_group_name == self.config.param_group_name)
        params, self.config = sampling_params(config, self.params.ignore_eos), config
        if self.loaded is None:
            return  # load() prepares it
        same_decoding = same_prompts and params == self.params  # the shapes the decoders were built for
        if not same_group:
            self.weights.switch(resolve_group(self.loaded.model, config.param_group_name))
        if not same_decoding:  # free the last variant's stacks and decoders before free memory sizes this one
            self.weights.drop()
            self.decoders.clear()
            self.params = params
            if not same_prompts:
                self.prompts = PromptSet.of(self.loaded, config)
            self.plan.size_prompts(self.loaded.model, config, self.prompts.length, self.prompts.image is not None)
        self.plan.size_units(self.loaded.model, config.units_per_batch, total_units(config), self._sequence(),
                             self.weights.baseline.nbytes, self.weights.unsupported,
                             same_group=same_group and same_decoding, prefill=bucket(self.prompts.length),
                             image=self.prompts.image is not None)
        if same_group:  # the same group: its stacks and the decoders compiled for them stay (weights.keep)
            self.weights.keep(self.max_units)
        logger.info("variant %s: %s on %s = %d tensors, baseline %.1f MB, units per batch: at most %d",
                    config.name_suffix, config.degradation_method, config.param_group_name,
                    len(self.weights.baseline.targets), self.weights.baseline.nbytes / 1e6, self.max_units)

    def _release_compiled(self) -> None:
        """Reset torch.compile's in-process state once the worker's last compiled decoder is gone (the decoder cache
        calls it on the eviction that leaves none), and on CUDA give the memory back, so that free memory sizes
        the next variant or batch. Not while the judge's TextGenerator holds decoders of its own.

        torch.compile keeps what an evicted step captured: on the CPU its code-cache entry (tested), on CUDA also
        its recorded graphs and their memory pools. The evicted KV caches themselves go with their decoders, by
        reference counting (StaticDecoder holds no reference to itself). The reset is process-wide, so it waits
        until this worker, the process's only model, has no compiled decoder left; the on-disk caches stay, and
        a new group compiles anew anyway.
        """
        if self.texts is not None and self.texts.decoders:
            return
        torch.compiler.reset()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _sequence(self) -> int:
        """Tokens of one decoded row: the prompts' bucket and the new tokens."""
        return bucket(self.prompts.length) + self.params.max_new_tokens

    @property
    def max_units(self) -> int:
        """The most units one batch may decode: the config's request and what fits in memory."""
        return self.plan.max_units

    @property
    def units_per_batch(self) -> int:
        """How many units the installed stacks decode per batch (1: the per-unit path)."""
        return self.weights.units_per_batch if self.weights is not None else 1

    @property
    def prompt_batch_size(self) -> int:
        """Prompts per unit block of the next batch."""
        return self.plan.prompts

    def warm_up(self, n_units: int) -> bool:
        """Size the stacks for batches of `n_units` and compile the decode step on a few steps (nothing emitted).

        Returns False when it skipped the warm-up batch: the installed stacks already hold min(`n_units`,
        max_units) units and the decoder for them, the prompts and the settings has decoded a batch (in the
        group's previous variant), so the batch would compile nothing and only pay for the prefill and steps
        of a whole batch (11.6 s for `cookie_theft_it`'s picture rows on an H200, 2 s for text;
        docs/performance.md).
        """
        kept = self.weights.holds(min(n_units, self.plan.max_units))  # as fit_stacks sizes them
        if self.static and kept and self.decoders.ready(self._decoder_key(self.plan.prompts)):
            logger.info("warm-up for %d units per batch skipped: the stacks and the decoder of an earlier batch "
                        "are in place", n_units)
            return False
        # one prompt batch as run_units decodes it (out of memory shrinks it the same way), cut short, no lesion
        prompt_ids = tuple(range(self.plan.prompts)) if self.static else ()
        self._run_batch([Unit(self.config.levels[0], 0, prompt_ids)] * n_units, None, lesion=False)
        return True

    def warm_up_ahead(self, config: ExperimentConfig, group_units: list[int], actors: int) -> int | None:
        """Compile and save the decode step of `config`, a variant of a later group, then switch back to this one.

        So that group loads its step when it runs instead of compiling it (docs/design.md, "Groups compiled
        ahead"). `group_units`: the units of that group's variants, `config`'s first; `actors`: how many share
        them, as the driver will size its batches (from this worker's memory for each). Returns the units per
        batch it compiled for, or None: this worker does not save its steps, or the warm-up failed (a warning;
        the group compiles when it runs). Raises when it cannot switch back: it must not run units then.
        """
        if not self.compiles:
            return None
        current, size = self.config, None
        try:
            self.prepare(config)
            size = group_batch_sizes(group_units[0], [self.max_units] * actors, group_units[1:])[0]
            self.warm_up(size)
            size = min(size, self.max_units)  # out of memory in the warm-up halved it
        except Exception as error:  # noqa: BLE001 (out of memory, or anything else: the step compiles later)
            logger.warning("the decode step of %s could not be compiled ahead (%s: %s); it compiles when it runs",
                           config.name_suffix, type(error).__name__, str(error).splitlines()[0] if str(error) else "")
            size = None
        self.prompts = None  # sized anew: out of memory in the warm-up may have halved the prompts per batch
        self.prepare(current)
        return size

    @property
    def compiles(self) -> bool:
        """Whether this worker compiles its decode steps and saves them where other processes load them."""
        return self.static and self.compile_mode is not None and self.steps is not None

    def run_units(self, units: list[Unit], emit: Emit) -> list[UnitReport]:
        """Run units (any levels) with the same prompts, up to max_units at a time (one at a time without stacks)."""
        reports: list[UnitReport] = []
        while len(reports) < len(units):
            reports += self._run_batch(units[len(reports):], emit, lesion=True)
        return reports

    def fit_stacks(self, n_units: int) -> None:
        """Stacks for `n_units` units (at most max_units); kept when they already hold as many or more.

        The warm-up sizes them for the driver's batch size, so an actor allocates its copies (and compiles
        its decoder) once: a smaller batch is padded rather than recompiled.
        """
        self.weights.fit(min(n_units, self.plan.max_units))

    def lesion(self, units: list[Unit]) -> None:
        """Degrade for `units`: the live weights for one unit, or each unit's copies when rep-batching."""
        self.weights.lesion(self.config.degradation_method, self.config.seed, units)

    def generate_units(self, units: list[Unit], emit: Emit) -> list[UnitReport]:
        """The first units_per_batch of `units` with their lesion already in place (benchmarks time it apart).

        Should out of memory halve the units, the smaller batch is lesioned again."""
        return self._run_batch(units, emit, lesion=False)

    def _run_batch(self, units: list[Unit], emit: Emit | None, lesion: bool) -> list[UnitReport]:
        """The first units that fit: stacks, lesion, perplexity, then the prompts batch by batch
        (`emit` None: a warm-up).

        The one out-of-memory loop: each pass is one step, the plan says what a failed step halves; records
        already sent by a batch that starts again are deduplicated by the writer."""
        batch: RecordBuilder | None = None
        while batch is None or batch.pending:
            try:
                if batch is None:
                    batch = self._start_batch(units, lesion)
                else:
                    self._generate_next(batch, emit)
                continue
            except torch.OutOfMemoryError:
                tried = max(self.units_per_batch, min(len(units), self.plan.max_units))  # fit drops what it can't fill
                halving = self.plan.halving(batch is not None, tried)
                if halving is None:  # even one prompt of one unit does not fit
                    raise
            # outside the except block, so the failed attempt's tensors are freed first
            self.plan.halve(halving, tried)
            if halving is Halving.UNITS:  # the batch starts again with fewer units; records need their lesion anew
                batch, lesion = None, emit is not None
                self.weights.drop()
        return batch.reports()

    def _start_batch(self, units: list[Unit], lesion: bool) -> RecordBuilder:
        """Stacks for `units`, then the lesion and perplexity of the first units_per_batch of them."""
        started = time.perf_counter()
        self.fit_stacks(len(units))
        units = units[: self.units_per_batch]
        if len({u.prompt_ids for u in units}) != 1:
            raise ValueError("the units of a batch must share their prompts: group them by prompt_ids "
                             "(as actors.driver.take_batch does)")
        values = []
        if lesion:
            self.lesion(units)
            if self.config.compute_perplexity:
                values = perplexities(self.loaded, self.config.perplexity_text, self.units_per_batch)[: len(units)]
        return RecordBuilder(self.config, self.loaded, units, self._runtimes(units, values), started)

    def _runtimes(self, units: list[Unit], perplexities: list[float]) -> list[dict]:
        """Per unit: where its records were made, and its perplexity when the config asks for it."""
        runtime = {"actor": self.name, "device": str(self.device), "reps_in_batch": len(units), **self.provenance}
        if not perplexities:
            return [dict(runtime) for _ in units]
        return [{**runtime, "perplexity": value} for value in perplexities]

    def _generate_next(self, batch: RecordBuilder, emit: Emit | None) -> None:
        """The batch's next prompts: generate, then emit each unit's records (a warm-up: a few steps, no records)."""
        prompt_ids = batch.pending[: self.plan.prompts]
        generations = self._generate(batch.units, prompt_ids, WARM_UP_STEPS if emit is None else None)
        if emit is None:
            batch.skip(prompt_ids)
            return
        for records in batch.build(prompt_ids, generations, {"vram_usage_percent": self.plan.after_batch()}):
            emit(records)

    def _generate(self, units: list[Unit], prompt_ids: list[int], steps: int | None) -> list[Generation]:
        """Generations ordered by unit block: units[0]'s prompts, then units[1]'s, ... (`steps`: a warm-up)."""
        prompts = [self.config.prompts[i] for i in prompt_ids]
        seeds = [sampling_seed(self.config, u.repeat_index, p) for u in units for p in prompts]
        seeds += seeds[-len(prompts):] * (self.units_per_batch - len(units))  # padding blocks repeat the last unit
        generations = generate(self.loaded, [p.text for p in prompts], self.params, seeds, self.prompts.image,
                               self.decoder_for(self.plan.prompts), units=self.units_per_batch, steps=steps)
        return generations[: len(units) * len(prompts)]

    def decoder_for(self, rows: int) -> StaticDecoder | None:
        """The static decoder for `rows` prompts per unit block with the installed stacks, or None (eager).

        Built on first use; a short prompt batch is padded to the rows of the plan's decoder."""
        if not self.static:
            return None
        return self.decoders.get(self._decoder_key(rows))

    def _decoder_key(self, rows: int) -> DecoderKey:
        """What the decoder for `rows` prompts per unit block is built for, with the installed stacks."""
        return DecoderKey(rows, self.units_per_batch, self.prompts.length, self.params, self.compile_mode,
                          self.weights.generation)

    def generate_texts(self, prompts: list[str], max_new_tokens: int, steps: int | None = None) -> list[Generation]:
        """Greedy replies of the undamaged model to chat prompts, in order (a local LLM judge; nothing emitted).

        No lesion and no rep-batching: the stacks are dropped and the baseline restored first.
        `steps`: decode only that many tokens (a warm-up that compiles each prompt length's step).
        """
        self.weights.clean()
        if self.texts is None:
            self.texts = TextGenerator(self.loaded, self.static, self.config.max_batch_size, self.compile_mode)
        return self.texts.generate(prompts, max_new_tokens, steps)
