import copy
import dataclasses
import pickle
import re

import pytest

from configs.experiments import (
    DECODING_FIELDS,
    EXPERIMENTS,
    FLAT_FIELDS,
    PARTS,
    RESULT_FIELDS,
    ExperimentConfig,
    apply_overrides,
    check_image,
    get_config,
)
from configs.prompts import COOKIE_THEFT_PROMPTS, DREAM_PROMPTS, IQ_PROMPTS
from configs.settings import LesionSettings, ModelSettings, RunSettings, SamplingSettings, TaskSettings


def test_the_three_experiments_validate_and_list_themselves():
    assert sorted(EXPERIMENTS) == ["cookie_theft_it", "dreams_it", "iq_it"]
    with pytest.raises(ValueError, match="cookie_theft_it, dreams_it, iq_it"):
        get_config("dream")


def test_prompt_sets():
    assert len(DREAM_PROMPTS) == 38 and len(COOKIE_THEFT_PROMPTS) == 20 and 60 <= len(IQ_PROMPTS) <= 70
    for prompts in (DREAM_PROMPTS, IQ_PROMPTS, COOKIE_THEFT_PROMPTS):
        assert len({p.text for p in prompts}) == len(prompts)
    categories = {p.category for p in IQ_PROMPTS}
    assert categories == {"math", "language", "logic", "factual", "creativity"}
    for prompt in IQ_PROMPTS:
        if prompt.category == "creativity":
            assert prompt.answer is None
        else:
            assert re.fullmatch(r"-?\d+(\.\d+)?|yes|no|[A-Za-z]+", prompt.answer), prompt


def test_cookie_theft_ships_its_stand_in_picture():
    config = get_config("cookie_theft_it")
    assert config.image_enabled and config.image_path.is_file()


def test_overrides_are_typed():
    config = apply_overrides(get_config("dreams_it"), ["n_rep=2", "do_sample=false", "temperature=0.7",
                                                       "max_prompts=4", "degradation_method=ablation", "min_deg=0",
                                                       "max_deg=0.8"])
    assert (config.n_rep, config.do_sample, config.temperature, len(config.prompts)) == (2, False, 0.7, 4)
    assert config.levels == [0.0, 0.2, 0.4, 0.6, 0.8]


@pytest.mark.parametrize("assignment,message", [
    ("n_rep=two", "expected int"), ("n_rep=0", "n_rep must be an integer >= 1"), ("colour=red", "unknown field"),
    ("n_rep", "FIELD=VALUE"), ("do_sample=maybe", "true or false"), ("max_deg=1.5", "min_deg="),
    ("param_group_name=attention", "attn_only"), ("dtype=int8", "dtype"), ("temperature=0", "do_sample=false"),
    ("units_per_batch=-1", "units_per_batch must be an integer >= 0"),
])
def test_bad_overrides_say_how_to_fix_them(assignment, message):
    config = get_config("dreams_it")
    if assignment.startswith("max_deg"):
        config = apply_overrides(config, ["degradation_method=ablation", "min_deg=0", "max_deg=0.5"])
    with pytest.raises(ValueError, match=message):
        apply_overrides(config, [assignment])


def test_a_missing_picture_is_refused_when_the_task_is_planned_not_when_built():
    config = apply_overrides(get_config("dreams_it"), ["image_filename=missing.png", "image_enabled=true"])
    with pytest.raises(ValueError, match="missing.png does not exist"):
        check_image(config)
    check_image(config.replace(image_enabled=False))  # a task without a picture never needs it


def test_result_hash_follows_generation_settings():
    config = get_config("dreams_it")
    assert config.result_hash() == get_config("dreams_it").result_hash()
    assert config.result_hash() != config.replace(temperature=0.5).result_hash()
    assert config.result_hash() == config.replace(n_rep=3).result_hash()


def test_another_seed_never_counts_as_done():
    config = get_config("dreams_it")
    assert config.result_hash() != config.replace(seed=7).result_hash()


def test_reps_per_batch_is_a_deprecated_alias_of_units_per_batch():
    with pytest.warns(DeprecationWarning, match="units_per_batch"):
        config = apply_overrides(get_config("dreams_it"), ["reps_per_batch=3"])
    assert config.units_per_batch == 3 and config.reps_per_batch is None
    with pytest.raises(ValueError, match="disagree"):
        apply_overrides(get_config("dreams_it"), ["reps_per_batch=3", "units_per_batch=2"])


def test_reps_per_batch_is_a_deprecated_alias_in_replace_too():
    with pytest.warns(DeprecationWarning, match="units_per_batch"):
        config = get_config("dreams_it").replace(reps_per_batch=2)
    assert config.units_per_batch == 2 and config.reps_per_batch is None
    with pytest.raises(ValueError, match="disagree"):
        get_config("dreams_it").replace(reps_per_batch=3, units_per_batch=2)


def test_result_hash_is_the_one_existing_results_are_keyed_by():
    """Existing results files are keyed by these hashes: the same 11 names and values as before the parts."""
    assert get_config("dreams_it").result_hash() == "af1868bd21bc"
    assert get_config("cookie_theft_it").result_hash() == "97108d5e3f8d"
    assert len(RESULT_FIELDS) == 11 and set(RESULT_FIELDS) <= set(FLAT_FIELDS)


def test_the_config_is_frozen_in_typed_parts():
    config = get_config("dreams_it")
    assert {name: type(getattr(config, name)) for name in PARTS} == {
        "model": ModelSettings, "lesion": LesionSettings, "sampling": SamplingSettings, "task": TaskSettings,
        "run": RunSettings}
    for name in ("temperature", "n_rep", "sampling", "config_name"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(config, name, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sampling.temperature = 0.5
    assert config.temperature == 1.0 and config.n_rep == 10


def test_every_field_reads_flat_from_its_part():
    config = get_config("cookie_theft_it")
    for name, part in FLAT_FIELDS.items():
        assert getattr(config, name) == getattr(getattr(config, part), name), name
    assert config.levels == config.lesion.levels and config.prompts == config.task.prompts
    assert config.image_path == config.task.image_path
    assert set(FLAT_FIELDS) == {f.name for part in PARTS.values() for f in dataclasses.fields(part) if f.init}


def test_replace_routes_flat_names_to_their_parts_and_validates():
    config = get_config("dreams_it")
    changed = config.replace(temperature=0.5, n_rep=2, config_name="other")
    assert (changed.sampling.temperature, changed.run.n_rep, changed.config_name) == (0.5, 2, "other")
    assert changed.model is config.model and changed.task is config.task  # untouched parts are shared
    assert config.temperature == 1.0  # the original is unchanged
    with pytest.raises(ValueError, match="temperature must be > 0"):
        config.replace(temperature=0)
    with pytest.raises(ValueError, match="colour: unknown field; fields: .*degradation_method.*units_per_batch"):
        config.replace(colour="red")
    with pytest.raises(ValueError, match="max_prompts must be >= 1"):
        ExperimentConfig.build("x", "dreams", max_prompts=0)
    with pytest.raises(ValueError, match="build a config from flat field names"):
        ExperimentConfig(config_name="x", task={"prompt_group": "dreams"})


@pytest.mark.parametrize("name,message", [
    ("device", "chosen by Ray: --gpus N runs on GPUs, --gpus 0 on the CPU"),
    ("model_variant", "only the instruction-tuned variant"), ("restore_strategy", "only one strategy was ever built"),
])
def test_removed_fields_say_what_to_do_instead(name, message):
    with pytest.raises(ValueError, match=f"--set {name} is no longer a config field: .*{message}"):
        apply_overrides(get_config("dreams_it"), [f"{name}=cuda"])
    with pytest.raises(ValueError, match=f"{name} is no longer a config field: .*{message}"):
        get_config("dreams_it").replace(**{name: "cuda"})
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.build("x", "dreams", **{name: "cuda"})


def test_build_gives_the_registered_experiments():
    assert get_config("cookie_theft_it") == ExperimentConfig.build(
        "cookie_theft_it", "cookie_theft", image_enabled=True, name_suffix="2025_06_24_cookies")
    assert get_config("dreams_it") == ExperimentConfig(config_name="dreams_it", task=TaskSettings("dreams"),
                                                       run=RunSettings(name_suffix="2025_05_20_dreams"))


def test_a_config_travels_through_pickle_and_deepcopy():
    """Ray pickles configs to actors; equal configs hash alike."""
    config = apply_overrides(get_config("iq_it"), ["max_prompts=3", "temperature=0.7", "degradation_method=ablation"])
    for copied in (pickle.loads(pickle.dumps(config)), copy.deepcopy(config)):
        assert copied == config and hash(copied) == hash(config)
        assert copied.prompts == config.prompts and copied.levels == config.levels
        assert copied.result_hash() == config.result_hash()
    assert len({config, copy.deepcopy(config), config.replace(n_rep=3)}) == 2


def test_field_groups_come_from_the_parts():
    config = get_config("dreams_it")
    variant = apply_overrides(config, ["degradation_method=mult_gauss", "param_group_name=mlp_only", "n_rep=2"])
    assert variant.model == config.model  # a sweep's variants share the loaded model
    assert config.replace(dtype="bfloat16").model != config.model
    assert variant.decoding_key() == config.decoding_key()  # the worker keeps its decoders
    for change in ({"max_prompts": 3}, {"max_batch_size": 8}, {"image_enabled": True}):
        assert config.replace(**change).decoding_key() != config.decoding_key(), change
    assert len(config.decoding_key()) == len(DECODING_FIELDS)
