"""Record keys: what makes two records the same record. Plain Python, so that the results writer's process
(actors/writer.py) starts without importing torch."""

from __future__ import annotations


def level_key(level: float) -> str:
    """A level as it appears in keys: integers without a decimal point, floats by repr to 12 digits.

    12 significant digits, so that a level computed another way (the original pipeline's 0.35 and
    this one's 0.35000000000000003) is the same level.
    """
    return str(int(level)) if float(level).is_integer() else repr(float(f"{float(level):.12g}"))


def record_key(record: dict) -> str:
    """What makes a record unique: group, method, level, repetition, prompt, model, settings."""
    parts = (record["param_group_name"], record["degradation_method"], level_key(record["level_value"]),
             record["repeat_index"], record["prompt_text"], record["model_name"], record.get("settings_hash", ""))
    return "\x1f".join(map(str, parts))
