"""What a run must do: output path, record keys, and the (level, repetition) units still missing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from configs.experiments import ExperimentConfig
from degrader.models import model_name, model_name_clean


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


def level_key(level: float) -> str:
    """A level as it appears in keys: integers without a decimal point, floats by repr."""
    return str(int(level)) if float(level).is_integer() else repr(float(level))


def record_key(record: dict) -> str:
    """What makes a record unique: group, method, level, repetition, prompt, model, settings."""
    parts = (record["param_group_name"], record["degradation_method"], level_key(record["level_value"]),
             record["repeat_index"], record["prompt_text"], record["model_name"], record.get("settings_hash", ""))
    return "\x1f".join(map(str, parts))


def planned_key(config: ExperimentConfig, level: float, repeat_index: int, prompt_text: str) -> str:
    """The key that the record of (level, repetition, prompt) will have."""
    return record_key({"param_group_name": config.param_group_name, "degradation_method": config.degradation_method,
                       "level_value": level, "repeat_index": repeat_index, "prompt_text": prompt_text,
                       "model_name": model_name(config.model_name), "settings_hash": config.result_hash()})


def missing_units(config: ExperimentConfig, done_keys: set[str]) -> list[Unit]:
    """Every (level, repetition) with at least one prompt whose record is not in `done_keys`."""
    units = []
    for level in config.levels:
        for repeat_index in range(config.n_rep):
            missing = tuple(i for i, prompt in enumerate(config.prompts)
                            if planned_key(config, level, repeat_index, prompt.text) not in done_keys)
            if missing:
                units.append(Unit(level, repeat_index, missing))
    return units


def total_units(config: ExperimentConfig) -> int:
    """How many (level, repetition) units a complete run has."""
    return len(config.levels) * config.n_rep


def total_records(config: ExperimentConfig) -> int:
    """How many records a complete run has."""
    return total_units(config) * len(config.prompts)
