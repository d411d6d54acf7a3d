"""Records of the original thesis pipeline, made readable by this one (read side only).

The original `experimento.py` / `src/pipeline.py` wrote the level as `std_dev` (its resume key was
`(param_group_name, std_dev, repeat_index, degradation_method, prompt_text)`), some files also or
only as `degrad_level`, and had no `level_value`, `settings_hash`, `prompt_category` or `answer_key`.
`normalise` adds those fields to a copy of such a record and never changes or drops a field it has.
"""

from __future__ import annotations

import hashlib
import json

ORIGINAL_SCHEMA = "original"
LEVEL_FIELDS = ("std_dev", "degrad_level")  # std_dev first: it was the original's resume key
KEY_FIELDS = ("param_group_name", "degradation_method", "repeat_index", "prompt_text", "model_name")
# a task whose prompts all have one category; iq's categories cannot be recovered from a record
TASK_CATEGORY = {"dreams": "dream", "cookie_theft": "picture_description"}
# the original pipeline's defaults, taken for a field an old record lacks
ORIGINAL_DEFAULTS = {"seed": 42, "temperature": 1.0, "do_sample": True, "load_4bit": False}


def is_original(record: dict) -> bool:
    """A record of the original pipeline: std_dev or degrad_level, and no level_value.

    Anything else passes through untouched: the store also keeps files of other records.
    """
    return "level_value" not in record and any(name in record for name in LEVEL_FIELDS)


def normalise(record: dict) -> dict:
    """The record itself when it is current; else a copy with level_value and the other new fields added."""
    if not is_original(record):
        return record
    missing = [name for name in KEY_FIELDS if name not in record]
    if missing:
        raise ValueError(f"a record of the original pipeline lacks {', '.join(missing)}, which identify a record")
    seed = record["seed"] if record.get("seed") is not None else ORIGINAL_DEFAULTS["seed"] + record["repeat_index"]
    settings = [_recorded(record, name) for name in ("temperature", "do_sample", "load_4bit")]
    added = {
        "level_value": original_level(record),
        "prompt_category": TASK_CATEGORY.get(record.get("prompt_group")),
        "answer_key": None,
        "settings_hash": original_settings_hash(seed - record["repeat_index"], *settings),
        "record_schema": ORIGINAL_SCHEMA,
    }
    return {**record, **{name: value for name, value in added.items() if name not in record}}


def _recorded(record: dict, name: str):
    """A setting as the record has it, or the original pipeline's default when it is missing or null."""
    return record[name] if record.get(name) is not None else ORIGINAL_DEFAULTS[name]


def original_level(record: dict) -> float:
    """The level of an original record: std_dev, else degrad_level; two different values are an error."""
    values = {name: record[name] for name in LEVEL_FIELDS if isinstance(record.get(name), (int, float))}
    if not values:
        raise ValueError("a record of the original pipeline has no level: none of level_value, "
                         f"{', '.join(LEVEL_FIELDS)} is a number")
    if len(set(values.values())) > 1:  # which one is the level is not knowable from the record
        raise ValueError(f"a record of the original pipeline has std_dev={values['std_dev']} and degrad_level="
                         f"{values['degrad_level']}; add level_value to its records to say which is the level")
    return next(iter(values.values()))


def original_settings_hash(base_seed: int, temperature: float, do_sample: bool, load_in_4bit: bool) -> str:
    """'original-' + 8 hex digits over the generation settings an original record carries.

    Old records cannot be matched to a full settings_hash (they lack dtype, top_k, top_p,
    max_new_tokens...), so they are matched on what they do record; the prefix keeps them apart
    from records of this pipeline in every grouping by settings_hash.
    """
    values = {"seed": base_seed, "temperature": float(temperature), "do_sample": bool(do_sample),
              "load_in_4bit": bool(load_in_4bit)}
    return f"{ORIGINAL_SCHEMA}-" + hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:8]
