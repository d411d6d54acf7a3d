"""Sweeps: the thesis's lesion variants, applied through the config's flat field names."""

import pytest

from configs.experiments import apply_overrides, get_config
from configs.sweeps import VARIANTS, apply_variant, method_variant, sweep_variants


def test_a_method_takes_the_thesis_range_typed_by_its_fields():
    assert method_variant("mult_gauss", "mlp_only") == ("gauss_mlp", {"min_deg": 0.0, "max_deg": 0.5, "deg_steps": 11})
    name, values = method_variant("mean_out", "attn_only")
    assert name == "ablation_attn" and type(values["deg_steps"]) is int and type(values["max_deg"]) is float
    assert method_variant("uni_quant", "mlp_only")[0] == "quant_attn" and method_variant("nothing", "x") is None


def test_every_variant_applies_to_every_task_with_its_own_suffix():
    for task in ("dreams_it", "iq_it", "cookie_theft_it"):
        base = get_config(task)
        for variant in sweep_variants("thesis"):
            config = apply_variant(base, variant)
            assert config.name_suffix == f"{base.name_suffix}_{variant}" and config.model == base.model
            assert config == apply_overrides(base, [*VARIANTS[variant], f"name_suffix={config.name_suffix}"])
    mlp = apply_variant(get_config("dreams_it"), "gauss_mlp")  # the thesis's range for it
    assert (mlp.degradation_method, mlp.param_group_name, mlp.min_deg, mlp.max_deg, mlp.deg_steps) == (
        "mult_gauss", "mlp_only", 0, 0.5, 11)
    with pytest.raises(ValueError, match="unknown sweep or variant 'nope'; sweeps: thesis"):
        sweep_variants("gauss_attn,nope")
