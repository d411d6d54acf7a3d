"""ExperimentConfig, frozen and in typed parts (configs/settings.py), and the registry of named experiments.

Every field of a part also reads flat, under its own name (`config.temperature` is `config.sampling.temperature`):
the records, the result hash, `replace` and `--set FIELD=VALUE` use those names, the original pipeline's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from typing import get_type_hints

from configs.settings import (
    IMAGES_DIR,
    LesionSettings,
    ModelSettings,
    RunSettings,
    SamplingSettings,
    TaskSettings,
)

# Fields that change what a record contains; their hash is part of every record key (docs/output_schema.md).
RESULT_FIELDS = ("model_name", "seed", "dtype", "load_in_4bit", "temperature", "do_sample", "top_k", "top_p",
                 "max_new_tokens", "image_enabled", "image_filename")
# What a worker's decoders are built for: while these stay the same, a new variant keeps them.
DECODING_FIELDS = ("prompts", "image_enabled", "image_path", "max_batch_size")
# Names that were fields once; setting one raises with what to do instead.
REMOVED_FIELDS = {
    "device": "each actor's device is chosen by Ray: --gpus N runs on GPUs, --gpus 0 on the CPU",
    "model_variant": "only the instruction-tuned variant ('it') was ever built; choose the model with model_name",
    "restore_strategy": "only one strategy was ever built (subset_in_memory: the degraded group is restored from "
                        "its copy in memory), so there is nothing to choose",
}
ALIASES = {"reps_per_batch": "units_per_batch"}  # deprecated name -> field


@dataclass(frozen=True, kw_only=True)
class ExperimentConfig:
    """One experiment: a task's prompts, a lesion (group, method, levels) and generation settings.

    Build one from flat names with `ExperimentConfig.build`, change one with `replace`; both re-validate.
    """

    config_name: str  # the named experiment (EXPERIMENTS), written into every record
    model: ModelSettings = field(default_factory=ModelSettings)
    lesion: LesionSettings = field(default_factory=LesionSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    task: TaskSettings
    run: RunSettings = field(default_factory=RunSettings)

    def __post_init__(self) -> None:
        for name, part in PARTS.items():  # each part validated itself when it was built
            if not isinstance(getattr(self, name), part):
                raise ValueError(f"{name} must be a {part.__name__}, got {getattr(self, name)!r}; build a config "
                                 "from flat field names with ExperimentConfig.build(...)")

    @classmethod
    def build(cls, config_name: str, prompt_group: str, **fields) -> ExperimentConfig:
        """A config from flat field names (e.g. temperature=0.5); the fields not given keep their defaults."""
        routed = _route({"prompt_group": prompt_group, **fields})
        return cls(config_name=config_name, **{name: part(**routed.get(name, {})) for name, part in PARTS.items()})

    def replace(self, **changes) -> ExperimentConfig:
        """A validated copy with flat `changes` (e.g. temperature=0.5), each applied to its part."""
        config_name = changes.pop("config_name", self.config_name)
        parts = {name: dataclasses.replace(getattr(self, name), **values) for name, values in _route(changes).items()}
        return dataclasses.replace(self, config_name=config_name, **parts)

    def result_hash(self) -> str:
        """A short hash over the fields that change results (part of every record key)."""
        values = {name: getattr(self, name) for name in RESULT_FIELDS}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]

    def decoding_key(self) -> tuple:
        """The values of DECODING_FIELDS: two configs with the same key can share a worker's decoders."""
        return tuple(getattr(self, name) for name in DECODING_FIELDS)

    @property
    def reps_per_batch(self) -> None:
        """Deprecated: always None; a reps_per_batch given to build, replace or --set sets units_per_batch."""
        return None


# Each part of the config by its field name, from the annotations: the one list of parts.
PARTS: dict[str, type] = {name: hint for name, hint in get_type_hints(ExperimentConfig).items()
                          if dataclasses.is_dataclass(hint)}


def _flat_names(with_properties: bool) -> dict[str, str]:
    """Flat name -> the part that holds it: the parts' fields, and with `with_properties` their public properties
    (levels, prompts, image_path); a name in two parts, or one of ExperimentConfig's own, raises."""
    pairs = [(f.name, name) for name, part in PARTS.items() for f in dataclasses.fields(part) if f.init]
    if with_properties:
        pairs += [(attribute, name) for name, part in PARTS.items() for attribute, value in vars(part).items()
                  if isinstance(value, property) and not attribute.startswith("_")]
    names = [name for name, _ in pairs]
    clashes = sorted({name for name in names if names.count(name) > 1 or hasattr(ExperimentConfig, name)})
    if clashes:  # a flat name must name exactly one thing
        raise TypeError(f"{', '.join(clashes)}: in two parts of ExperimentConfig, or a name of its own")
    return dict(pairs)


def _flat_read(part: str, name: str) -> property:
    """A read-only property: config.<name> is config.<part>.<name>."""
    return property(lambda config: getattr(getattr(config, part), name), doc=f"config.{part}.{name} (read-only)")


# The one table behind `replace`, `build` and --set (the parts' fields), and behind the flat reads (with properties).
FLAT_FIELDS, FLAT_READS = _flat_names(with_properties=False), _flat_names(with_properties=True)
for _name, _part in FLAT_READS.items():
    setattr(ExperimentConfig, _name, _flat_read(_part, _name))
if not set(RESULT_FIELDS) <= set(FLAT_FIELDS) or not set(DECODING_FIELDS) <= set(FLAT_READS):
    raise TypeError("RESULT_FIELDS and DECODING_FIELDS must name fields of ExperimentConfig's parts")


def _route(changes: dict) -> dict[str, dict]:
    """Flat field changes grouped by part; a removed, unknown or disagreeing name raises."""
    routed: dict[str, dict] = {}
    for name, value in _take_alias(changes).items():
        check_field_name(name)
        routed.setdefault(FLAT_FIELDS[name], {})[name] = value
    return routed


def check_field_name(name: str) -> None:
    """`name` is a flat field; a removed one says what to do instead, an unknown one lists the fields."""
    if name in REMOVED_FIELDS:
        raise ValueError(f"{name} is no longer a config field: {REMOVED_FIELDS[name]}")
    if name not in FLAT_FIELDS:
        raise ValueError(f"{name}: unknown field; fields: {', '.join(sorted(FLAT_FIELDS))}")


def _take_alias(changes: dict) -> dict:
    """reps_per_batch (deprecated) sets units_per_batch, with a warning; both at once must agree."""
    if changes.get("reps_per_batch") is None:
        return {name: value for name, value in changes.items() if name != "reps_per_batch"}
    changes = dict(changes)
    reps = changes.pop("reps_per_batch")
    if changes.get("units_per_batch", reps) != reps:
        raise ValueError(f"reps_per_batch={reps} and units_per_batch={changes['units_per_batch']} "
                         "disagree; set only units_per_batch (reps_per_batch is its deprecated name)")
    warnings.warn("reps_per_batch is deprecated: it counts units (level x repetition) per batch; use "
                  "units_per_batch", DeprecationWarning, stacklevel=4)
    return {**changes, "units_per_batch": reps}


def check_image(config: ExperimentConfig) -> None:
    """A task that shows a picture has it: called when the task is planned (launch, dry run)."""
    if config.image_enabled and not config.image_path.is_file():
        raise ValueError(f"image {config.image_path} does not exist; put the picture in {IMAGES_DIR} and "
                         "--set image_filename=NAME, or --set image_enabled=false")


EXPERIMENTS: dict[str, ExperimentConfig] = {
    "dreams_it": ExperimentConfig.build("dreams_it", "dreams", name_suffix="2025_05_20_dreams"),
    "iq_it": ExperimentConfig.build("iq_it", "iq", name_suffix="2025_05_04_IQ"),
    "cookie_theft_it": ExperimentConfig.build("cookie_theft_it", "cookie_theft", image_enabled=True,
                                              name_suffix="2025_06_24_cookies"),
}


def get_config(name: str) -> ExperimentConfig:
    """The named experiment (frozen, so shared safely); an unknown name raises and lists the valid ones."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown config {name!r}; available: {', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def field_value(name: str, text: str):
    """`text` typed by the annotation of flat field `name` (None, bool, int, float or str)."""
    annotation = _annotation(ALIASES.get(name, name))
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


def _annotation(name: str) -> str:
    """The annotation of flat field `name` as written (the parts use postponed annotations)."""
    return next(str(f.type) for f in dataclasses.fields(PARTS[FLAT_FIELDS[name]]) if f.name == name)


def apply_overrides(config: ExperimentConfig, assignments: list[str]) -> ExperimentConfig:
    """A validated copy of `config` with FIELD=VALUE assignments, each typed by its field."""
    changes = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep:
            raise ValueError(f"--set {assignment!r}: write FIELD=VALUE, e.g. --set n_rep=2")
        try:
            check_field_name(ALIASES.get(name, name))
        except ValueError as error:
            raise ValueError(f"--set {error}") from None
        changes[name] = field_value(name, text)
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
