"""ExperimentConfig, validated at construction, and the registry of named experiments."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from configs.prompts import TASK_PROMPTS, Prompt, PromptFileError, prompts_for_task
from degrader.groups import parse_group
from degrader.methods import METHODS, get_method
from degrader.schedules import levels_for

IMAGES_DIR = Path(__file__).parent / "images"
DTYPE_NAMES = ("auto", "float16", "bfloat16", "float32")
# Fields that change what a record contains; their hash is part of every record key.
RESULT_FIELDS = ("model_name", "seed", "dtype", "load_in_4bit", "temperature", "do_sample", "top_k", "top_p",
                 "max_new_tokens", "image_enabled", "image_filename")


@dataclass
class ExperimentConfig:
    """One experiment: a task's prompts, a lesion (group, method, levels) and generation settings."""

    config_name: str
    prompt_group: str  # task whose prompts run: "dreams", "iq" or "cookie_theft"
    model_name: str = "google/gemma-3-4b-it"  # HF id, local folder, "embedded" or "random:gemma-3-4b-it"
    model_variant: Literal["it"] = "it"
    device: str = "auto"  # each actor's device: its GPU when it has one, else the CPU
    dtype: str = "auto"  # "auto" = bfloat16 on GPU, float32 on CPU (Gemma 3 overflows in float16)
    load_in_4bit: bool = False  # bitsandbytes 4-bit weights (GPU only)
    restore_strategy: Literal["subset_in_memory"] = "subset_in_memory"
    param_group_name: str = "attn_only"
    degradation_method: str = "uni_quant"
    min_deg: float = 2
    max_deg: float = 256
    deg_steps: int = 5
    n_rep: int = 10  # repetition r uses seed + r
    max_batch_size: int = 40  # most prompts generated together
    # units (level, repetition) decoded as one batch, each with its own degraded copy of the group
    # (rep-batching); 0 = as many as GPU memory allows (1 on the CPU), 1 = one unit at a time
    units_per_batch: int = 0
    reps_per_batch: int | None = None  # deprecated name of units_per_batch (it counts units, not repetitions)
    seed: int = 42
    temperature: float = 1.0
    do_sample: bool = True
    top_k: int = 64  # Gemma 3's generation_config values, which the thesis's generate() applied
    top_p: float = 0.95
    max_new_tokens: int = 350
    image_enabled: bool = False
    image_filename: str = "cookie_theft_standin.png"  # in configs/images/, or an absolute path
    compute_perplexity: bool = False  # perplexity of perplexity_text, once per (level, repetition)
    perplexity_text: str = "The quick brown fox jumps over the lazy dog."
    name_suffix: str = ""
    max_prompts: int | None = None  # run only the first N prompts (quick runs)
    # --prompts: a TOML/JSON prompt set or the thesis's configs/prompts.py (docs/prompts.md); None = built-in set.
    # Not in result_hash: records are keyed by prompt text, and a prompt's picture is in image_filename.
    prompts_file: str | None = None
    # the prompts, read once here, so that actors on other nodes never need the file
    _prompt_set: tuple[Prompt, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # the image is checked when a task that shows it is planned (check_image), not here: the table of
        # experiments below is built on import, and a missing picture must not break every command
        for check in (_take_alias, _check_names, _load_prompts, _check_numbers, _check_levels):
            check(self)

    @property
    def prompts(self) -> tuple[Prompt, ...]:
        """The prompts that run (the first max_prompts of the task's set)."""
        return self._prompt_set[: self.max_prompts]

    @property
    def levels(self) -> list[float]:
        """The degradation levels of this experiment, in the order they run."""
        return levels_for(self.degradation_method, self.min_deg, self.max_deg, self.deg_steps)

    @property
    def image_path(self) -> Path:
        """The picture shown with every prompt when image_enabled."""
        path = Path(self.image_filename)
        return path if path.is_absolute() else IMAGES_DIR / path

    def result_hash(self) -> str:
        """A short hash over the fields that change results (part of every record key)."""
        values = {name: getattr(self, name) for name in RESULT_FIELDS}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]

    def replace(self, **changes) -> "ExperimentConfig":
        """A validated copy with `changes` applied."""
        return dataclasses.replace(self, **changes)


def _take_alias(config: ExperimentConfig) -> None:
    """reps_per_batch (deprecated) sets units_per_batch, with a warning; both at once must agree."""
    if config.reps_per_batch is None:
        return
    if config.units_per_batch not in (0, config.reps_per_batch):
        raise ValueError(f"reps_per_batch={config.reps_per_batch} and units_per_batch={config.units_per_batch} "
                         "disagree; set only units_per_batch (reps_per_batch is its deprecated name)")
    warnings.warn("reps_per_batch is deprecated: it counts units (level x repetition) per batch; use "
                  "units_per_batch", DeprecationWarning, stacklevel=4)
    config.units_per_batch, config.reps_per_batch = config.reps_per_batch, None


def _check_names(config: ExperimentConfig) -> None:
    if config.prompt_group not in TASK_PROMPTS:
        raise ValueError(f"prompt_group {config.prompt_group!r} is unknown; use one of {sorted(TASK_PROMPTS)}")
    parse_group(config.param_group_name)  # raises with the valid names and the layer-range syntax
    if config.degradation_method not in METHODS:
        raise ValueError(f"degradation_method {config.degradation_method!r} is unknown; use one of {sorted(METHODS)}")
    if config.model_variant != "it" or config.restore_strategy != "subset_in_memory":
        raise ValueError("model_variant must be 'it' and restore_strategy 'subset_in_memory' (the only ones built)")
    if config.dtype not in DTYPE_NAMES:
        raise ValueError(f"dtype {config.dtype!r} is unknown; use one of {DTYPE_NAMES}")


def _load_prompts(config: ExperimentConfig) -> None:
    """Read the prompt set (built-in or --prompts); a picture named by its prompts replaces the config's."""
    if config.prompts_file is None:
        config._prompt_set = TASK_PROMPTS[config.prompt_group]
        return
    try:
        config._prompt_set = prompts_for_task(config.prompts_file, config.prompt_group)
    except PromptFileError as error:
        raise ValueError(f"--prompts: {error}") from None
    images = {prompt.image for prompt in config._prompt_set}
    if images == {None}:
        return
    if len(images) > 1:  # the worker shows one picture to a whole batch
        raise ValueError(f"--prompts: {config.prompts_file} names several pictures ({', '.join(map(str, images))}); "
                         "every prompt of a set must name the same picture, or none")
    if not config.image_enabled:
        raise ValueError(f"--prompts: {config.prompts_file} shows the picture {images.pop()} but image_enabled is "
                         "false; --set image_enabled=true, or remove the prompts' image")
    config.image_filename = images.pop()
    if not config.image_path.is_file():
        raise ValueError(f"--prompts: the picture {config.image_path} named by {config.prompts_file} does not exist; "
                         f"name a file in {IMAGES_DIR} or an absolute path")


def _check_numbers(config: ExperimentConfig) -> None:
    positive = {"n_rep": config.n_rep, "max_batch_size": config.max_batch_size, "max_new_tokens": config.max_new_tokens}
    for name, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not isinstance(config.units_per_batch, int) or config.units_per_batch < 0:
        raise ValueError(f"units_per_batch must be an integer >= 0 (0 = as many as fit), got {config.units_per_batch!r}")
    if config.max_prompts is not None and config.max_prompts < 1:
        raise ValueError(f"max_prompts must be >= 1 (or unset for all prompts), got {config.max_prompts}")
    if not config.temperature > 0:
        raise ValueError(f"temperature must be > 0 (use do_sample=false for greedy decoding), got {config.temperature}")
    if config.top_k < 0 or not 0 < config.top_p <= 1:
        raise ValueError(f"top_k must be >= 0 (0 = off) and top_p in (0, 1] (1 = off); got {config.top_k}, {config.top_p}")


def _check_levels(config: ExperimentConfig) -> None:
    method = get_method(config.degradation_method)
    try:
        levels_for(config.degradation_method, config.min_deg, config.max_deg, config.deg_steps)
    except ValueError as error:
        raise ValueError(f"{error} (min_deg={config.min_deg}, max_deg={config.max_deg} are levels of {method.name}, "
                         f"{method.level_name}; fix them with --set min_deg=... --set max_deg=...)") from None


def check_image(config: ExperimentConfig) -> None:
    """A task that shows a picture has it: called when the task is planned (launch, dry run)."""
    if config.image_enabled and not config.image_path.is_file():
        raise ValueError(f"image {config.image_path} does not exist; put the picture in {IMAGES_DIR} and "
                         "--set image_filename=NAME, or --set image_enabled=false")


EXPERIMENTS: dict[str, ExperimentConfig] = {
    "dreams_it": ExperimentConfig("dreams_it", "dreams", name_suffix="2025_05_20_dreams"),
    "iq_it": ExperimentConfig("iq_it", "iq", name_suffix="2025_05_04_IQ"),
    "cookie_theft_it": ExperimentConfig("cookie_theft_it", "cookie_theft", image_enabled=True,
                                        name_suffix="2025_06_24_cookies"),
}


def get_config(name: str) -> ExperimentConfig:
    """A fresh copy of the named experiment; an unknown name raises and lists the valid ones."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown config {name!r}; available: {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name].replace()


def _parse_value(name: str, annotation: str, text: str):
    if "None" in annotation and text.lower() in ("none", "null", ""):
        return None
    if annotation.startswith("bool"):
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"--set {name}={text}: expected true or false")
        return text.lower() in ("true", "1", "yes")
    for kind in (int, float):
        if annotation.startswith(kind.__name__):
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"--set {name}={text}: expected {kind.__name__}") from None
    return text


def apply_overrides(config: ExperimentConfig, assignments: list[str]) -> ExperimentConfig:
    """A validated copy of `config` with FIELD=VALUE assignments, each typed by its field."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(ExperimentConfig) if f.init}
    changes = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep:
            raise ValueError(f"--set {assignment!r}: write FIELD=VALUE, e.g. --set n_rep=2")
        if name not in fields or name == "config_name":
            raise ValueError(f"--set {name}: unknown field; fields: {', '.join(sorted(set(fields) - {'config_name'}))}")
        changes[name] = _parse_value(name, fields[name], text)
    default = method_default_range(config, changes)
    return config.replace(**{**(default[1] if default else {}), **changes})


def method_default_range(config: ExperimentConfig, changes: dict) -> tuple[str, dict] | None:
    """(thesis variant, its level range) when `changes` switch the method and give neither min_deg nor max_deg.

    Another method's levels mean something else (uni_quant's 2..256 values are no ablation p), so a new
    method without a range takes the thesis's range for it (configs/sweeps.py), deg_steps included
    unless given.
    """
    method = changes.get("degradation_method")
    if method in (None, config.degradation_method) or {"min_deg", "max_deg"} & changes.keys():
        return None
    from configs.sweeps import method_variant  # sweeps builds on this module

    variant = method_variant(method, changes.get("param_group_name", config.param_group_name))
    if variant is None:
        return None
    name, values = variant
    return name, {k: v for k, v in values.items() if k not in changes}
