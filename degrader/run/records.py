"""The JSON record of one generation (fields documented in docs/output_schema.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from degrader import __version__
from degrader.decoding.generation import Generation
from degrader.models import LoadedModel
from degrader.run.plan import Unit
from degrader.seeding import derive_seed, repetition_seed

if TYPE_CHECKING:  # configs builds on degrader: only type checkers may read it from here (tests/test_layers.py)
    from configs.experiments import ExperimentConfig
    from configs.prompts import Prompt

PROMPT_IDS_START = 1  # prompt_id counts from 1, as in the original records


@dataclass(frozen=True)
class UnitReport:
    """What a finished unit sends back to the driver."""

    unit: Unit
    records: int
    tokens: int
    seconds: float


def sampling_seed(config: ExperimentConfig, repeat_index: int, prompt: Prompt) -> int:
    """The seed of a prompt's sampling stream: (seed + repetition, prompt), shared across levels."""
    return derive_seed(repetition_seed(config.seed, repeat_index), "sampling", prompt.text)


def make_record(config: ExperimentConfig, loaded: LoadedModel, unit: Unit, prompt_index: int,
                generation: Generation, runtime: dict) -> dict:
    """One record; `runtime` adds actor-side measurements (VRAM, perplexity, actor name)."""
    prompt = config.prompts[prompt_index]
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "model_name": loaded.name,
        "degradation_method": config.degradation_method,
        "level_value": unit.level,
        "std_dev": unit.level,  # legacy name of level_value in the thesis records
        "param_group_name": config.param_group_name,
        "repeat_index": unit.repeat_index,
        "seed": repetition_seed(config.seed, unit.repeat_index),
        "prompt_group": config.prompt_group,
        "prompt_id": prompt_index + PROMPT_IDS_START,
        "prompt_text": prompt.text,
        "prompt_category": prompt.category,
        "answer_key": prompt.answer,
        "output": generation.text,
        "duration": round(generation.duration, 4),
        "tokens": generation.tokens_out,
        "tokens_in": generation.tokens_in,
        "batch_size_effective": generation.batch_size,
        "temperature": config.temperature,
        "do_sample": config.do_sample,
        "top_k": config.top_k,
        "top_p": config.top_p,
        "max_new_tokens": config.max_new_tokens,
        "sampling_seed": sampling_seed(config, unit.repeat_index, prompt),
        "load_4bit": config.load_in_4bit,
        "dtype": loaded.description["dtype"],
        "image_enabled": config.image_enabled,
        "image_filename": config.image_filename if config.image_enabled else None,
        "config_name": config.config_name,
        "name_suffix": config.name_suffix,
        "settings_hash": config.result_hash(),
        "model_description": loaded.description,
        "degrader_version": __version__,
        **runtime,
    }


class RecordBuilder:
    """The records of one batch of units, prompt batch by prompt batch, with what each unit has made so far.

    `runtimes[r]`: what units[r]'s records add (where they were made, its perplexity); `started`: when the
    batch began (its lesion included), for the reports' seconds."""

    def __init__(self, config: ExperimentConfig, loaded: LoadedModel, units: list[Unit], runtimes: list[dict],
                 started: float):
        if len(runtimes) != len(units):
            raise ValueError(f"one runtime per unit: got {len(runtimes)} for {len(units)} units")
        self.config, self.loaded, self.units, self.runtimes, self.started = config, loaded, units, runtimes, started
        self.pending = list(units[0].prompt_ids)  # prompts still to generate, in order
        self.records, self.tokens = [0] * len(units), [0] * len(units)

    def build(self, prompt_ids: list[int], generations: list[Generation], extra: dict) -> list[list[dict]]:
        """Each unit's records of `prompt_ids`; `generations` come unit block by unit block, as decoded.

        `extra`: fields of this prompt batch (its VRAM use)."""
        n = len(prompt_ids)
        built = []
        for r, (unit, runtime) in enumerate(zip(self.units, self.runtimes, strict=True)):
            mine = generations[r * n: (r + 1) * n]
            built.append([make_record(self.config, self.loaded, unit, i, g, {**runtime, **extra})
                          for i, g in zip(prompt_ids, mine, strict=True)])
            self.tokens[r] += sum(g.tokens_out for g in mine)
            self.records[r] += n
        self.skip(prompt_ids)
        return built

    def skip(self, prompt_ids: list[int]) -> None:
        """Count `prompt_ids` as done without records (a warm-up)."""
        self.pending = self.pending[len(prompt_ids):]

    def reports(self) -> list[UnitReport]:
        """Per unit: records, new tokens and the batch's seconds so far."""
        seconds = time.perf_counter() - self.started
        return [UnitReport(u, n, t, seconds) for u, n, t in zip(self.units, self.records, self.tokens, strict=True)]
