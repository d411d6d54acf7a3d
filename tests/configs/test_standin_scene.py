"""The Cookie Theft stand-in: drawn without any text primitive, committed as drawn, labelled a stand-in."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from configs.experiments import ExperimentConfig
from scripts import draw_standin_scene

COMMITTED = draw_standin_scene.DEFAULT_OUT
TEXT_METHODS = ("text", "multiline_text", "textbbox", "multiline_textbbox", "textlength")
FONT_LOADERS = ("load_default", "load_default_imagefont", "truetype", "load", "load_path")


class TextPrimitiveUsed(AssertionError):
    """A drawing call that puts letters or digits in the pixels."""


def _forbid(name: str):
    def forbidden(*args, **kwargs):
        raise TextPrimitiveUsed(f"the stand-in drawing called {name}")

    return forbidden


@pytest.fixture
def no_text(monkeypatch):
    """Every Pillow text-drawing method and font loader raises while the test runs."""
    for name in TEXT_METHODS:
        monkeypatch.setattr(ImageDraw.ImageDraw, name, _forbid(f"ImageDraw.{name}"))
    for name in FONT_LOADERS:
        if hasattr(ImageFont, name):
            monkeypatch.setattr(ImageFont, name, _forbid(f"ImageFont.{name}"))


def test_the_guard_catches_text(no_text):
    """The guard itself works: drawing one letter under it fails."""
    draw = ImageDraw.Draw(Image.new("RGB", (20, 20)))
    with pytest.raises(TextPrimitiveUsed):
        draw.text((0, 0), "A")


def test_drawing_uses_no_text_primitive(no_text):
    scene = draw_standin_scene.draw_scene()
    assert scene.size == (draw_standin_scene.SIZE, draw_standin_scene.SIZE)
    assert not hasattr(draw_standin_scene, "ImageFont")


def test_drawing_is_deterministic():
    first, second = draw_standin_scene.draw_scene(), draw_standin_scene.draw_scene()
    assert hashlib.sha256(first.tobytes()).digest() == hashlib.sha256(second.tobytes()).digest()


def test_committed_png_is_what_the_script_draws(tmp_path):
    """Pixel for pixel (PNG bytes may differ with the zlib build), and the same text chunks."""
    out = tmp_path / "scene.png"
    draw_standin_scene.main(["--out", str(out)])
    with Image.open(COMMITTED) as committed, Image.open(out) as redrawn:
        assert committed.size == redrawn.size == (896, 896)
        assert committed.mode == redrawn.mode == "RGB"
        assert np.array_equal(np.asarray(committed), np.asarray(redrawn))
        assert committed.text == redrawn.text


def test_metadata_says_stand_in():
    with Image.open(COMMITTED) as image:
        chunks = image.text
    assert "stand-in" in chunks["Title"].lower()
    assert "stand-in" in chunks["Description"] and "NOT the Cookie Theft picture" in chunks["Description"]
    assert chunks["Source"].startswith("scripts/draw_standin_scene.py")
    assert "standin" in COMMITTED.name


def test_experiments_use_the_committed_file():
    assert ExperimentConfig.build("x", "cookie_theft").image_filename == COMMITTED.name
