"""The compile cache: a key that changes with each of its inputs, and real inductor compiles (CPU) in child
processes that write under the keyed folder, hit it from a second process, and miss it under another key."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from degrader.decoding import compile_cache
from degrader.decoding.compile_cache import compile_cache_dir, compile_cache_key, format_key, use_compile_cache

ROOT = Path(__file__).resolve().parents[3]

# A child process: its own inductor state, its own temporary folder, so the default /tmp/torchinductor_<user>
# it would use is one this test can inspect. Each phase (cache folder, bundle to load first, bundle to save after)
# compiles the same step afresh under its folder; prints inductor's cache counters per phase as JSON.
COMPILE_SCRIPT = """
import json, sys
import torch
from torch._dynamo.utils import counters
from degrader.decoding import compile_cache

def step(x, w):
    return torch.nn.functional.gelu(x @ w).sum(dim=-1) * 3.0

x, w = torch.arange(24.0).reshape(4, 6), torch.ones(6, 5)
results = []
for directory, load_from, save_to in json.loads(sys.argv[1]):
    torch._dynamo.reset()
    counters.clear()
    redirect = compile_cache.use_compile_cache(directory)
    if load_from:
        assert compile_cache.load_artifacts(load_from)
    assert torch.allclose(torch.compile(step, backend="inductor", dynamic=False)(x, w), step(x, w))
    if save_to:
        assert compile_cache.save_artifacts(save_to)
    results.append({name: dict(values) for name, values in counters.items()})
    redirect.undo()
print(json.dumps(results))
"""


def compile_in_child(temporary: Path, *phases: tuple[Path, Path | None, Path | None]) -> list[dict]:
    """Compile the small step in a fresh process, once per phase (folder, bundle to load, bundle to save)."""
    temporary.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": str(ROOT)}
    for name in (compile_cache.CACHE_DIR_ENV, compile_cache.TRITON_DIR_ENV):
        env.pop(name, None)
    argument = json.dumps([[str(part) if part else "" for part in phase] for phase in phases])
    child = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT, argument], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def fx_counter(counters: dict, name: str) -> int:
    """inductor's FX graph cache counter `name` (hit, miss), 0 when never counted."""
    return counters.get("inductor", {}).get(f"fxgraph_cache_{name}", 0)


BASE_INPUTS = {"torch": "2.11.0+cu128", "transformers": "5.17.0", "triton": "3.5.0", "cuda": "12.8",
               "device": "NVIDIA H100 80GB HBM3 sm90", "python": "3.11.7", "model": "random:gemma-3-4b-it",
               "model_config": "abc"}


def test_key_is_stable_and_readable():
    key = format_key(BASE_INPUTS)
    assert key == format_key(dict(reversed(BASE_INPUTS.items())))
    assert key.startswith("torch2.11.0-tf5.17.0-")
    assert len(key.rsplit("-", 1)[1]) == compile_cache.KEY_HASH_LENGTH


@pytest.mark.parametrize("name", sorted(BASE_INPUTS))
def test_key_changes_with_each_input(name):
    assert format_key({**BASE_INPUTS, name: BASE_INPUTS[name] + "x"}) != format_key(BASE_INPUTS)


def test_model_identity_tells_models_apart():
    random_4b = compile_cache_key("random:gemma-3-4b-it", "cpu")
    assert random_4b == compile_cache_key("random:gemma-3-4b-it", torch.device("cpu"))
    assert random_4b != compile_cache_key("random:gemma-3-270m", "cpu")
    config = {"hidden_size": 8}
    # the same spec with another config (a local folder whose config.json changed) is another key
    assert compile_cache_key({"spec": "/models/a", "config": config}, "cpu") != \
        compile_cache_key({"spec": "/models/a", "config": {"hidden_size": 16}}, "cpu")
    assert compile_cache_key({"spec": "/models/a", "config": config}, "cpu") != \
        compile_cache_key({"spec": "/models/b", "config": config}, "cpu")
    with pytest.raises(ValueError, match="'spec'"):
        compile_cache_key({"config": config}, "cpu")


def test_cache_folder_is_under_the_project_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEGRADER_CACHE", str(tmp_path))
    assert compile_cache_dir("k") == tmp_path / "compile" / "k"


def test_use_compile_cache_undo_restores_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(compile_cache.CACHE_DIR_ENV, "/somewhere/else")
    monkeypatch.delenv(compile_cache.TRITON_DIR_ENV, raising=False)
    redirect = use_compile_cache(tmp_path / "cache")
    assert os.environ[compile_cache.CACHE_DIR_ENV] == str((tmp_path / "cache").resolve())
    assert os.environ[compile_cache.TRITON_DIR_ENV] == str((tmp_path / "cache" / "triton").resolve())
    redirect.undo()
    assert os.environ[compile_cache.CACHE_DIR_ENV] == "/somewhere/else"
    assert compile_cache.TRITON_DIR_ENV not in os.environ


def test_second_process_hits_the_keyed_cache_and_another_key_misses(tmp_path, monkeypatch):
    monkeypatch.setenv("DEGRADER_CACHE", str(tmp_path / "degrader"))
    keyed = compile_cache_dir(compile_cache_key({"spec": "model-a", "config": {}}, "cpu"))
    other = compile_cache_dir(compile_cache_key({"spec": "model-b", "config": {}}, "cpu"))
    bundle = tmp_path / "artifacts.bin"

    [first] = compile_in_child(tmp_path / "tmp1", (keyed, None, bundle))
    assert fx_counter(first, "miss") >= 1 and fx_counter(first, "hit") == 0
    assert any(keyed.rglob("*")) and (keyed / "fxgraph").is_dir()
    default = tmp_path / "tmp1" / f"torchinductor_{getpass.getuser()}"
    assert not default.exists() or not any(default.rglob("*")), sorted(default.rglob("*"))

    # one more process: the keyed folder hits; switched to another key it misses; switched to an empty folder
    # after loading the Mega-Cache bundle (another node without the first folder) it hits again
    second, elsewhere, loaded = compile_in_child(tmp_path / "tmp2", (keyed, None, None), (other, None, None),
                                                 (tmp_path / "fresh", bundle, None))
    assert fx_counter(second, "hit") >= 1 and fx_counter(second, "miss") == 0
    assert fx_counter(elsewhere, "hit") == 0 and fx_counter(elsewhere, "miss") >= 1
    assert any(other.rglob("*"))
    assert fx_counter(loaded, "hit") >= 1 and fx_counter(loaded, "miss") == 0


def test_loaded_model_key_needs_no_network_and_tells_models_apart(tiny_multimodal, embedded, tmp_path, monkeypatch):
    monkeypatch.setenv("DEGRADER_CACHE", str(tmp_path))
    key = compile_cache.loaded_model_key(embedded)
    assert key == compile_cache.loaded_model_key(embedded)
    assert key != compile_cache.loaded_model_key(tiny_multimodal)
    redirect = compile_cache.use_model_compile_cache(embedded)
    try:
        assert redirect.directory == (tmp_path / "compile" / key).resolve()
        assert os.environ[compile_cache.CACHE_DIR_ENV] == str(redirect.directory)
    finally:
        redirect.undo()
