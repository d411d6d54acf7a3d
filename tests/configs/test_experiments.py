import re

import pytest

from configs.experiments import EXPERIMENTS, apply_overrides, check_image, get_config
from configs.prompts import COOKIE_THEFT_PROMPTS, DREAM_PROMPTS, IQ_PROMPTS


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
