"""Shared fixtures: the real embedded Gemma 3 270M, loaded once per test session."""

from __future__ import annotations

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
