"""Shared fixtures: the real embedded Gemma 3 270M, loaded once per test session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARAGRAPH = ("The history of the city goes back more than two thousand years. It grew from a small fishing "
             "village on the river into a busy port, and its markets drew traders from across the region. "
             "Today it is known for its old bridges, its university and its museums.")


@pytest.fixture(scope="session")
def embedded():
    """The real embedded model (float32, CPU); tests that degrade it must restore it."""
    from degrader.models import load_model

    return load_model("embedded", dtype="float32", device="cpu")


@pytest.fixture(scope="session")
def tiny_multimodal():
    """A tiny random multimodal Gemma 3 with the real Gemma 3 processor."""
    from degrader.models import load_model

    return load_model("random:tiny-gemma3", dtype="float32", device="cpu")


def interpreted_outputs(script: str, path: Path, timeout: int) -> dict:
    """Run `python script PATH` with triton's interpreter on and load what it saved at PATH.

    A child process: triton reads TRITON_INTERPRET=1 only when `triton.language` is first imported, and
    other tests may have imported it already."""
    import torch

    path_entries = [str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join(path_entries)}
    child = subprocess.run([sys.executable, script, str(path)], env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=timeout)
    assert child.returncode == 0, child.stderr[-4000:]
    return torch.load(path)


OUTPUT_NAME = "outputs_mult_gauss_embedded-gemma-3-270m_2025_05_20_dreams.json"


def record(prompt: str, output: str, level: float = 0.5, settings: str = "abc123", **fields) -> dict:
    """A record as the results writer stores it, with only the fields that tell records apart and compare them."""
    return {"param_group_name": "attn_only", "degradation_method": "mult_gauss", "level_value": level,
            "repeat_index": 0, "prompt_text": prompt, "model_name": "embedded:gemma-3-270m", "settings_hash": settings,
            "output": output, "timestamp": "2026-11-28T10:00:00.000Z", "duration": 1.0, "actor": "ModelActor:cpu0",
            "batch_size_effective": 2, "reps_in_batch": 1, **fields}


def write_output(folder: Path, records: list[dict] | None, journal: list[dict] = (), name: str = OUTPUT_NAME) -> Path:
    """An output file (None: none) and its journal in `folder`, as the results writer leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    if records is not None:
        (folder / name).write_text(json.dumps(records))
    if journal:
        (folder / f"{name}.journal").write_text("".join(json.dumps(r) + "\n" for r in journal))
    return folder / name
