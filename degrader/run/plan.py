"""What a run must do: output path, record keys, the (level, repetition) units still missing, and their batches."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from degrader.models import model_name, model_name_clean
from degrader.run.keys import record_key
from degrader.run.legacy import original_settings_hash

if TYPE_CHECKING:  # configs builds on degrader: only type checkers may read it from here (tests/test_layers.py)
    from configs.experiments import ExperimentConfig


@dataclass(frozen=True)
class Unit:
    """One (level, repetition) of an experiment, with the prompts it still has to generate."""

    level: float
    repeat_index: int
    prompt_ids: tuple[int, ...]

    @property
    def label(self) -> str:
        """A short name for logs: level and repetition."""
        return f"level={self.level} rep={self.repeat_index}"


def output_path(config: ExperimentConfig, results_dir: Path) -> Path:
    """results/outputs_{method}_{model}_{suffix}.json, the original pipeline's naming."""
    suffix = f"_{config.name_suffix}" if config.name_suffix else ""
    return Path(results_dir) / f"outputs_{config.degradation_method}_{model_name_clean(config.model_name)}{suffix}.json"


def planned_key(config: ExperimentConfig, level: float, repeat_index: int, prompt_text: str,
                settings_hash: str | None = None) -> str:
    """The key that the record of (level, repetition, prompt) will have (`settings_hash`: another one)."""
    return record_key({"param_group_name": config.param_group_name, "degradation_method": config.degradation_method,
                       "level_value": level, "repeat_index": repeat_index, "prompt_text": prompt_text,
                       "model_name": model_name(config.model_name),
                       "settings_hash": settings_hash or config.result_hash()})


def original_hash(config: ExperimentConfig) -> str:
    """The settings_hash that records of the original pipeline made with this config's settings carry."""
    return original_settings_hash(config.seed, config.temperature, config.do_sample, config.load_in_4bit)


def is_done(config: ExperimentConfig, level: float, repeat_index: int, prompt_text: str, done_keys: set[str]) -> bool:
    """A record of this config, or one of the original pipeline with the settings it recorded, exists."""
    return any(planned_key(config, level, repeat_index, prompt_text, settings) in done_keys
               for settings in (config.result_hash(), original_hash(config)))


def missing_units(config: ExperimentConfig, done_keys: set[str]) -> list[Unit]:
    """Every (level, repetition) with at least one prompt that is not done (see `is_done`)."""
    units = []
    for level in config.levels:
        for repeat_index in range(config.n_rep):
            missing = tuple(i for i, prompt in enumerate(config.prompts)
                            if not is_done(config, level, repeat_index, prompt.text, done_keys))
            if missing:
                units.append(Unit(level, repeat_index, missing))
    return units


def group_key(config: ExperimentConfig) -> tuple[str, str]:
    """The group a variant runs in: its task and parameter group (an actor keeps its stacks within one)."""
    return config.config_name, config.param_group_name


def total_units(config: ExperimentConfig) -> int:
    """How many (level, repetition) units a complete run has."""
    return len(config.levels) * config.n_rep


def total_records(config: ExperimentConfig) -> int:
    """How many records a complete run has."""
    return total_units(config) * len(config.prompts)


def group_batch_sizes(n_units: int, most: list[int], peer_units: list[int]) -> list[int]:
    """Units per batch for each actor, the same for every variant of a task and group: the largest of what each
    variant alone would take (`batch_sizes`), so that the decoder compiled for the first serves them all.

    A variant with fewer units pads its batches (blocks that repeat a unit, dropped), which costs less than
    compiling again: 150, 170 and 90 units on 4 actors of at most 17 take 15 per batch each, not 13, 15, 12."""
    return [max(sizes) for sizes in zip(*(batch_sizes(n, most) for n in [n_units, *peer_units]), strict=True)]


def batch_sizes(n_units: int, most: list[int]) -> list[int]:
    """Units per batch for each actor, so that all finish in the same number of rounds.

    With at most `most[a]` units per batch, the queue takes rounds = ceil(n / sum(most)); each actor's
    batch shrinks to its share of that: 50 units on 2 actors of at most 10 are 3 rounds of 9 each, not
    3 rounds for one actor and 2 for the other. Each actor warms up for its size, so its stacks and
    compiled decoder hold exactly that many (fewer rows: a faster step).
    """
    rounds = -(-n_units // sum(most))
    return [max(1, min(m, -(-m * n_units // (rounds * sum(most))))) for m in most]
