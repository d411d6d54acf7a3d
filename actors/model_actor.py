"""ModelActor: the Ray wrapper of a ModelWorker, pinned to a GPU (or a GPU fraction, or the CPU).

Only Ray concerns live here: which device Ray gave the actor, its name in logs and in the
dashboard, metrics, and records going to the ResultWriter batch by batch. Errors are logged with
the failing unit and re-raised, so the driver sees them.

The constructor takes only plain values (the log sink by its actor name): Ray keeps an actor handle
among a restartable actor's constructor arguments in the object store, which its restart would need
(ray-project/ray#53727, the `core_worker.cc ... max_restarts > 0` error line). The writer comes with
`load`, `set_writer` (actors launched before their output opened) or `set_variant`, which the driver calls
again after a restart.
"""

from __future__ import annotations

import logging
import os
import socket
import time

import ray
import torch
from ray.util.metrics import Counter

from actors.logs import setup_actor_logging
from configs.experiments import ExperimentConfig
from degrader.decoding.compile_cache import CompileCacheRedirect, use_model_compile_cache
from degrader.run.plan import Unit, group_key
from degrader.run.worker import ModelWorker, UnitReport

logger = logging.getLogger(__name__)


@ray.remote(max_restarts=-1, max_task_retries=0)
class ModelActor:
    """One model replica; `run_units` is called by the driver, one batch of units at a time."""

    def __init__(self, config: ExperimentConfig, name: str, log_sink: str | None = None, log_level: str = "INFO"):
        gpu_ids = ray.get_gpu_ids()
        self.name = name
        self.origin = f"{name} GPU {','.join(map(str, gpu_ids))}" if gpu_ids else f"{name} CPU"
        setup_actor_logging(log_sink, self.origin, log_level)
        device = torch.device("cuda", 0) if gpu_ids else torch.device("cpu")
        if not gpu_ids:
            torch.set_num_threads(max(1, int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
        node = ray.get_runtime_context().get_node_id()
        self.worker = ModelWorker(config, device, name, {"ray_node_id": node, "host": socket.gethostname()})
        self.writer = None  # the ResultWriter of the current variant's output (load / set_variant)
        self.compile_cache: CompileCacheRedirect | None = None  # the keyed on-disk compile cache, set by load
        self.tokens = Counter("degrader_tokens_generated", "new tokens generated", tag_keys=("actor",))
        self.records = Counter("degrader_records_generated", "records generated", tag_keys=("actor",))

    def __repr__(self) -> str:
        """The dashboard's Repr column (Ray reads it once, when the actor starts or restarts): name, device, model,
        variant. What the actor does now is in its task list: each run_units call is named after its units."""
        cfg = self.worker.config
        return (f"{self.origin}: {cfg.model_name} ({cfg.dtype}), variant {cfg.name_suffix or cfg.config_name}: "
                f"{cfg.degradation_method} on {cfg.param_group_name}")

    def load(self, writer=None) -> dict:
        """Load the model and its baseline (a separate call, so failures name the step); `writer`: the output's."""
        if writer is not None:  # a reload after a restart (_ensure_loaded) keeps the writer set_variant gave
            self.writer = writer
        try:
            description = self.worker.load()
            if self.compile_cache is None:  # before the first compile (warm_up): cache_dir()/compile/<model key>
                self.compile_cache = use_model_compile_cache(self.worker.loaded)
            self.worker.keep_steps_in(self.compile_cache.directory)
            return {**description, "actor": self.name, "pid": os.getpid(), "units_per_batch": self.worker.max_units,
                    "compiles": self.worker.compiles, "steps": str(self.worker.steps)}
        except Exception:
            logger.exception("%s failed to load the model", self.origin)
            raise

    def set_writer(self, writer) -> int:
        """The output's writer, for an actor loaded before its output was opened; returns its units per batch
        (loading again first if Ray restarted the actor since, so that they are not the unloaded default of 1)."""
        self.writer = writer
        try:
            self._ensure_loaded()
        except Exception:
            logger.exception("%s failed to load the model again", self.origin)
            raise
        return self.worker.max_units

    def set_variant(self, config: ExperimentConfig, writer) -> int:
        """Switch to another variant of the loaded model (a sweep's next output) and its writer.

        Returns how many units (level, repetition) the actor may now decode per batch.
        """
        self.writer = writer
        try:
            self.worker.prepare(config)
            self._ensure_loaded()  # so the driver sizes its batches from what fits, not from 1
        except Exception:
            logger.exception("%s failed to switch to variant %s", self.origin, config.name_suffix)
            raise
        return self.worker.max_units

    def _ensure_loaded(self) -> None:
        """Load the model if Ray restarted this actor since it was loaded (its __init__ ran again)."""
        if self.worker.loaded is None:
            self.load()

    def warm_up(self, n_units: int, ahead: list[tuple[ExperimentConfig, list[int], int]] = ()) -> dict:
        """Compile the decode steps of later groups (`ahead`: config, the units of its group's variants, actors),
        then prepare batches of `n_units` units and compile this variant's step before the first unit.

        Returns the seconds of both, whether this variant's warm-up batch ran (False: its stacks and decoder were
        in place), and the units per batch each later group's step was compiled for."""
        self._ensure_loaded()
        started = time.perf_counter()
        try:
            sizes = [(config, self._warm_up_ahead(config, units, actors)) for config, units, actors in ahead]
            ahead_s = time.perf_counter() - started
            warmed = self.worker.warm_up(n_units)
        except Exception:
            logger.exception("%s failed to warm up", self.origin)
            raise
        return {"seconds": time.perf_counter() - started - ahead_s, "ahead_s": ahead_s, "warmed": warmed,
                "ahead": [config.name_suffix for config, _ in sizes],
                "ahead_sizes": [(group_key(config), size) for config, size in sizes if size is not None]}

    def _warm_up_ahead(self, config: ExperimentConfig, group_units: list[int], actors: int) -> int | None:
        """ModelWorker.warm_up_ahead; a worker that cannot switch back to its variant ends this process, so that
        Ray restarts the actor (which loads the model again) rather than let it decode in an unknown state."""
        try:
            return self.worker.warm_up_ahead(config, group_units, actors)
        except Exception:
            logger.exception("%s could not switch back to its variant after compiling %s ahead; restarting",
                             self.origin, config.name_suffix)
            for handler in logging.getLogger().handlers:  # the line above reaches the run's log first
                handler.flush()
            os._exit(1)

    def run_units(self, units: list[Unit]) -> list[UnitReport]:
        """Run units with the same prompts; each batch's records go to the writer, acknowledged before returning."""
        self._ensure_loaded()
        acks = []

        def emit(records: list[dict]) -> None:
            acks.append(self.writer.append.remote(records))
            self.records.inc(len(records), tags={"actor": self.name})
            self.tokens.inc(sum(r["tokens"] for r in records), tags={"actor": self.name})

        labels = ", ".join(unit.label for unit in units)
        try:
            reports = self.worker.run_units(units, emit)
            ray.get(acks)
        except Exception:
            cfg = self.worker.config
            logger.exception("unit failed: %s %s %s", cfg.degradation_method, cfg.param_group_name, labels)
            raise
        for report in reports:
            logger.info("unit %s done: %d records, %d tokens in %.1fs (units per batch: %d)", report.unit.label,
                        report.records, report.tokens, report.seconds, min(len(units), self.worker.units_per_batch))
        return reports

    def generate_texts(self, prompts: list[str], max_new_tokens: int, steps: int | None = None) -> list[dict]:
        """Greedy replies of the undamaged model (a local LLM judge): text and new tokens per prompt, in order."""
        self._ensure_loaded()
        try:
            generations = self.worker.generate_texts(prompts, max_new_tokens, steps)
        except Exception:
            logger.exception("%s failed to generate %d judge replies", self.origin, len(prompts))
            raise
        self.tokens.inc(sum(g.tokens_out for g in generations), tags={"actor": self.name})
        return [{"text": g.text, "tokens": g.tokens_out} for g in generations]

    def pid(self) -> int:
        """This actor's process id (tests kill it)."""
        return os.getpid()
