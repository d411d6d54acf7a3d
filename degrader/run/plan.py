"""What a run must do: output path, record keys, and the (level, repetition) units still missing."""

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


def total_units(config: ExperimentConfig) -> int:
    """How many (level, repetition) units a complete run has."""
    return len(config.levels) * config.n_rep


def total_records(config: ExperimentConfig) -> int:
    """How many records a complete run has."""
    return total_units(config) * len(config.prompts)
