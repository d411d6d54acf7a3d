"""Prompt sets as data: the built-in TOML files, --prompts files (TOML, JSON) and the thesis's prompts.py."""

import hashlib
import json
import pickle
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from configs.experiments import IMAGES_DIR, apply_overrides, get_config
from configs.prompts import BUILTIN_DIR, TASK_PROMPTS, Prompt, PromptFileError, load_prompt_file, prompts_for_task
from tests.conftest import ROOT

FIXTURES = Path(__file__).parent / "fixtures"
ORIGINAL = FIXTURES / "original_prompts.py"
# SHA-256 of [[text, category, answer], ...] of the sets as they were Python tuples before becoming files:
# records' prompt texts, ids (positions), categories and answer keys must not change.
DIGESTS = {"dreams": "5608cd4976e37cafc90834292dc92dde345b2ff5f1b028d96bb8ba18c5960304",
           "iq": "4ad6b6b9b230f59e424c14488b3177a73704034ef1c3e68f40b9c6c368ce111b",
           "cookie_theft": "fd4a818dd2a0dffa63078cdbae261c5cd7c01154e20c0a031f0c1bf865c79185"}
TWO_IQ = [{"task": "iq", "category": "math", "prompt": "What is 2 + 2?", "answer": "4"},
          {"task": "iq", "category": "creativity", "prompt": "Name a colour."}]


def digest(prompts) -> str:
    return hashlib.sha256(json.dumps([[p.text, p.category, p.answer] for p in prompts]).encode()).hexdigest()


def write_toml(path: Path, entries: list[dict]) -> Path:
    """A prompt file in TOML, written by hand (the standard library reads TOML but does not write it)."""
    tables = ["[[prompts]]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in e.items()) for e in entries]
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def test_builtin_sets_are_the_former_ones_in_the_same_order():
    for task, expected in DIGESTS.items():
        assert digest(TASK_PROMPTS[task]) == expected, task
    assert [len(TASK_PROMPTS[t]) for t in ("dreams", "iq", "cookie_theft")] == [38, 65, 20]
    assert TASK_PROMPTS["iq"][1] == Prompt("What is the result of 3 + 48 / 6 - 7?", "math", "4")


def test_builtin_files_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["configs"]
    packaged = {p for pattern in patterns for p in (ROOT / "configs").glob(pattern)}
    assert set(BUILTIN_DIR.glob("*")) <= packaged and len(list(BUILTIN_DIR.glob("*.toml"))) == 3


def test_toml_and_both_json_layouts_read_the_same(tmp_path):
    toml = write_toml(tmp_path / "two.toml", TWO_IQ)
    (tmp_path / "list.json").write_text(json.dumps(TWO_IQ))
    (tmp_path / "table.json").write_text(json.dumps({"prompts": TWO_IQ}))
    expected = {"iq": (Prompt("What is 2 + 2?", "math", "4"), Prompt("Name a colour.", "creativity"))}
    for path in (toml, tmp_path / "list.json", tmp_path / "table.json"):
        assert load_prompt_file(path) == expected


def entry(**changes) -> dict:
    return {**TWO_IQ[0], **changes}


@pytest.mark.parametrize("name,content,message", [
    ("set.yaml", "", "unknown format '.yaml'; use one of .toml, .json, .py"),
    ("set.toml", "[[prompts]\n", "is not valid TOML"),
    ("set.json", "[]", "has no prompts"),
    ("set.json", '{"prompt": "What is 2 + 2?"}', "expected a list of prompts"),
    ("set.json", json.dumps([{k: v for k, v in TWO_IQ[0].items() if k != "category"}]),
     "missing or empty field 'category'"),
    ("set.json", json.dumps([entry(prompt="  ")]), "missing or empty field 'prompt'"),
    ("set.json", json.dumps([entry(answer_key="4")]), "unknown field(s) answer_key; fields: task, category, prompt"),
    ("set.json", json.dumps([entry(answer=4)]), "'answer' must be a string"),
    ("set.json", json.dumps([entry(task="maths")]), "unknown task 'maths'; use one of dreams, iq, cookie_theft"),
    ("set.json", json.dumps([entry(), entry(category="logic")]), "has the prompt 'What is 2 + 2?' twice"),
    ("set.json", json.dumps([TWO_IQ[0], "What is 3 + 3?"]), "prompt 2: expected a table/object"),
])
def test_bad_prompt_files_say_what_is_wrong(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(PromptFileError) as error:
        load_prompt_file(tmp_path / name)
    assert message in str(error.value)


def test_config_errors_come_at_construction(tmp_path):
    iq = write_toml(tmp_path / "iq.toml", TWO_IQ)
    with pytest.raises(ValueError, match="does not exist"):
        apply_overrides(get_config("iq_it"), [f"prompts_file={tmp_path / 'missing.toml'}"])
    with pytest.raises(ValueError, match="holds prompts of task\\(s\\) iq but the config runs task 'dreams'"):
        apply_overrides(get_config("dreams_it"), [f"prompts_file={iq}"])
    write_toml(tmp_path / "mixed.toml", [*TWO_IQ, {"task": "dreams", "category": "dream", "prompt": "Dream."}])
    with pytest.raises(ValueError, match="task\\(s\\) dreams, iq but the config runs task 'iq'"):
        apply_overrides(get_config("iq_it"), [f"prompts_file={tmp_path / 'mixed.toml'}"])


def test_a_prompt_file_replaces_the_set_and_travels_with_the_config(tmp_path):
    path = write_toml(tmp_path / "iq.toml", TWO_IQ)
    builtin = get_config("iq_it")
    config = apply_overrides(builtin, [f"prompts_file={path}"])
    assert [p.text for p in config.prompts] == ["What is 2 + 2?", "Name a colour."]
    assert config.prompts[0].answer == "4" and len(config.replace(max_prompts=1).prompts) == 1
    assert config.result_hash() == builtin.result_hash()  # records are keyed by text; the file is not a setting
    path.unlink()  # an actor on another node has no copy of the file: the prompts come with the config
    assert pickle.loads(pickle.dumps(config)).prompts == config.prompts
    assert apply_overrides(config, ["prompts_file=none"]).prompts == TASK_PROMPTS["iq"]


def test_a_prompt_picture_replaces_the_config_picture(tmp_path):
    picture = tmp_path / "scene.png"
    shutil.copy(IMAGES_DIR / "cookie_theft_standin.png", picture)
    described = [{"task": "cookie_theft", "category": "picture_description", "prompt": f"Describe {n}.",
                  "image": str(picture)} for n in ("it", "this")]
    builtin = get_config("cookie_theft_it")
    config = apply_overrides(builtin, [f"prompts_file={write_toml(tmp_path / 'a.toml', described)}"])
    assert config.image_path == picture and config.image_filename == str(picture)
    assert config.result_hash() != builtin.result_hash()  # another picture: other generations, other keys
    cases = {"several pictures": [described[0], {**described[1], "image": "cookie_theft_standin.png"}],
             "name the same picture, or none": [described[0], {**described[1], "image": None}],
             "does not exist": [{**d, "image": str(tmp_path / "none.png")} for d in described]}
    for message, entries in cases.items():
        entries = [{k: v for k, v in e.items() if v is not None} for e in entries]
        with pytest.raises(ValueError, match=message):
            apply_overrides(builtin, [f"prompts_file={write_toml(tmp_path / 'b.toml', entries)}"])
    with pytest.raises(ValueError, match="image_enabled is false"):
        apply_overrides(builtin, ["image_enabled=false", f"prompts_file={tmp_path / 'a.toml'}"])


def test_the_original_prompts_py_is_read_in_order_with_categories():
    by_task = load_prompt_file(ORIGINAL)
    assert [p.text for p in by_task["dreams"]] == ([p.text for p in TASK_PROMPTS["dreams"][:2]]
                                                   + ["Tell me about a dream."])
    assert {p.category for p in by_task["dreams"]} == {"dream"}
    assert [p.category for p in by_task["iq"]] == ["math", "math", "language", "language", "logic", "factual",
                                                   "factual", "creativity"]
    assert by_task["iq"][4].text.startswith("All cats are animals") and all(p.answer is None for p in by_task["iq"])
    assert by_task["cookie_theft"][2] == Prompt("Describe this picture in as much detail as possible.",
                                                "picture_description")
    assert prompts_for_task(ORIGINAL, "iq") == by_task["iq"]  # a config takes its own task's lists


def test_reading_the_original_prompts_py_executes_nothing(tmp_path):
    copy = tmp_path / "prompts.py"
    shutil.copy(ORIGINAL, copy)
    marker = copy.with_suffix(".executed")
    load_prompt_file(copy)
    config = apply_overrides(get_config("dreams_it"), [f"prompts_file={copy}"])
    assert len(config.prompts) == 3 and not marker.exists() and not ORIGINAL.with_suffix(".executed").exists()
    # the trap is armed: running the file does write the marker and raise
    ran = subprocess.run([sys.executable, str(copy)], capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode != 0 and "must be parsed, never executed" in ran.stderr and marker.exists()


def test_a_literal_iq_list_takes_its_categories_from_comments(tmp_path):
    path = tmp_path / "prompts.py"
    path.write_text('iq_prompts_it = [\n    "Warm-up question?",\n    # Math\n    "What is 2 + 2?",\n'
                    '    "What is 3 + 3?",\n    # Logic puzzles\n    "Is A left of C?",\n    # ... more to come\n'
                    '    "Is B left of C?",\n]\n')
    assert [p.category for p in load_prompt_file(path)["iq"]] == ["unknown", "math", "math", "logic", "logic"]


def test_a_sum_of_category_lists_keeps_its_order(tmp_path):
    path = tmp_path / "prompts.py"
    path.write_text('math_prompts = ["1 + 1?"]\nlogic_prompts = ["A or B?"]\n'
                    'iq_prompts_it = logic_prompts + math_prompts\n')
    assert [(p.text, p.category) for p in load_prompt_file(path)["iq"]] == [("A or B?", "logic"), ("1 + 1?", "math")]
    path.write_text('math_prompts = ["1 + 1?"]\nlogic_prompts = ["A or B?"]\n')  # no iq_prompts_it: README order
    assert [p.category for p in load_prompt_file(path)["iq"]] == ["math", "logic"]
    with pytest.raises(PromptFileError, match="has no prompts for task 'dreams'"):
        prompts_for_task(path, "dreams")


@pytest.mark.parametrize("source,message", [
    ("dream_prompts_it = load_prompts()\n", "must be a literal list of strings, found 'load_prompts()'"),
    ('dream_prompts_it = ["Dream.", f"Dream {1}."]\n', "only string literals are accepted"),
    ('dream_prompts_it = ["Dream.", 42]\n', "holds '42'; only string literals"),
    ('dream_prompts_it = ["Dream."] * 3\n', "must be a literal list of strings"),
    ('math_prompts = ["1?"]\niq_prompts_it = math_prompts + extra\n', "or a sum of math_prompts"),
    ('iq_prompts_it = math_prompts + logic_prompts\nmath_prompts = ["1?"]\n', "adds logic_prompts, which the file"),
    ('dream_prompts_it = []\n', "the list of task 'dreams' is empty"),
    ('dream_prompts_it = ["Dream.", "Dream."]\n', "has the prompt 'Dream.' twice"),
    ('prompts = ["Dream."]\n', "defines none of the lists dream_prompts_it"),
    ("dream_prompts_it = [\n", "is not valid Python"),
])
def test_original_layout_accepts_only_literals(tmp_path, source, message):
    path = tmp_path / "prompts.py"
    path.write_text(source)
    with pytest.raises(PromptFileError) as error:
        load_prompt_file(path)
    assert message in str(error.value)


def test_launch_refuses_a_bad_prompt_file_before_ray_starts(tmp_path, capsys):
    from scripts.launch import main

    iq = write_toml(tmp_path / "iq.toml", TWO_IQ)
    code = main(["--config", "dreams_it", "--prompts", str(iq), "--results-dir", str(tmp_path / "results"),
                 "--dry-run"])
    assert code == 2 and "config runs task 'dreams'" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_dry_run_with_the_thesis_prompts(tmp_path, capsys):
    from scripts.launch import main

    code = main(["--config", "iq_it", "--prompts", str(ORIGINAL), "--model", "embedded", "--gpus", "0", "--dry-run",
                 "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and f"(iq, 8 prompts from {ORIGINAL})" in out and "480 in all, 480 missing in 60 units" in out
