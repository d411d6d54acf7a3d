"""The JSON record of one generation (fields documented in docs/output_schema.md)."""

from __future__ import annotations

from datetime import datetime, timezone

from degrader.run.plan import Unit
from configs.experiments import ExperimentConfig
from configs.prompts import Prompt
from degrader import __version__
from degrader.decoding.generation import Generation
from degrader.models import LoadedModel
from degrader.seeding import derive_seed, repetition_seed

PROMPT_IDS_START = 1  # prompt_id counts from 1, as in the original records


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
