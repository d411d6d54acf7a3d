"""Sweeps: several lesion variants of a task in one launch, each variant to its own output file."""

from __future__ import annotations

from configs.experiments import ExperimentConfig, apply_overrides, field_value

# The thesis's five variants (method x group x level range).
VARIANTS: dict[str, list[str]] = {
    "gauss_attn": ["degradation_method=mult_gauss", "param_group_name=attn_only", "min_deg=0", "max_deg=1.4",
                   "deg_steps=15"],
    "gauss_mlp": ["degradation_method=mult_gauss", "param_group_name=mlp_only", "min_deg=0", "max_deg=0.5",
                  "deg_steps=11"],
    "gauss_embed": ["degradation_method=mult_gauss", "param_group_name=embed_only", "min_deg=0", "max_deg=1.0",
                    "deg_steps=21"],
    "ablation_attn": ["degradation_method=ablation", "param_group_name=attn_only", "min_deg=0", "max_deg=0.8",
                      "deg_steps=17"],
    "quant_attn": ["degradation_method=uni_quant", "param_group_name=attn_only", "min_deg=4", "max_deg=1024",
                   "deg_steps=9"],
}
SWEEPS: dict[str, list[str]] = {"thesis": list(VARIANTS)}
RANGE_FIELDS = ("min_deg", "max_deg", "deg_steps")  # a variant's level range, typed by LesionSettings
# probability methods the thesis did not run take ablation's range of p
PROBABILITY_METHODS = ("mean_out", "shuffle_rows", "shuffle_cols", "permute")


def method_variant(method: str, group: str) -> tuple[str, dict] | None:
    """The thesis variant whose level range a method takes by default: the one of (method, group), else the
    method's first, else ablation_attn for the other probability methods; with its min_deg, max_deg, deg_steps."""
    def lesion(name: str) -> dict:
        return dict(assignment.split("=", 1) for assignment in VARIANTS[name])

    candidates = [name for name in VARIANTS if lesion(name)["degradation_method"] == method]
    candidates.sort(key=lambda name: lesion(name)["param_group_name"] != group)
    if not candidates and method in PROBABILITY_METHODS:
        candidates = ["ablation_attn"]
    if not candidates:
        return None
    values = lesion(candidates[0])
    return candidates[0], {field: field_value(field, values[field]) for field in RANGE_FIELDS}


def sweep_variants(name: str) -> list[str]:
    """The variants of sweep `name`, or of a comma-separated list of variant names."""
    if name in SWEEPS:
        return SWEEPS[name]
    variants = [v.strip() for v in name.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"unknown sweep or variant {', '.join(unknown) or name!r}; sweeps: {', '.join(SWEEPS)}; "
                         f"variants: {', '.join(VARIANTS)} (comma-separated)")
    return variants


def apply_variant(config: ExperimentConfig, variant: str) -> ExperimentConfig:
    """`config` with the variant's lesion, writing to its own file: name_suffix gets `_<variant>`."""
    suffix = f"{config.name_suffix}_{variant}" if config.name_suffix else variant
    return apply_overrides(config, [*VARIANTS[variant], f"name_suffix={suffix}"])
