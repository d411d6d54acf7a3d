"""Random-weight models: a real architecture (config.json values) with seeded random weights.

`random:gemma-3-4b-it` has the compute and memory of the real Gemma-3-4b-it (text and vision) for
benchmarks and dry runs; `random:tiny-gemma3` is a tiny multimodal Gemma 3 for fast image-path
tests; `random:gemma-3-270m` is the embedded model's architecture (its config also serves dry runs).
Both use the real Gemma 3 tokenizer and chat format. Weights are drawn from generators
seeded by parameter name, so the same spec gives the same model everywhere.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from degrader.embedded import GEMMA3_CHAT_TEMPLATE, gemma3_tokenizer_folder
from degrader.seeding import generator_for

ARCHITECTURES_DIR = Path(__file__).parent / "architectures"
RANDOM_WEIGHTS_SEED = 0

_TINY_OVERRIDES = {
    "mm_tokens_per_image": 4,
    "text_config": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "num_key_value_heads": 1, "head_dim": 32, "query_pre_attn_scalar": 32, "sliding_window": 64,
                    "layer_types": ["sliding_attention", "full_attention"]},
    "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "image_size": 64, "patch_size": 16},
}
IMAGE_TOKENS = {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}


def random_architectures() -> list[str]:
    """The names accepted after `random:`."""
    return sorted([p.stem for p in ARCHITECTURES_DIR.glob("*.json")] + ["tiny-gemma3"])


def random_config(name: str):
    """The transformers config of random architecture `name` (no weights)."""
    from transformers import AutoConfig

    if name not in random_architectures():
        raise ValueError(f"unknown random architecture {name!r}; available: {', '.join(random_architectures())}")
    if name == "tiny-gemma3":
        values = _merge(json.loads((ARCHITECTURES_DIR / "gemma-3-4b-it.json").read_text()), _TINY_OVERRIDES)
    else:
        values = json.loads((ARCHITECTURES_DIR / f"{name}.json").read_text())
    return AutoConfig.for_model(values.pop("model_type"), **values)


def is_multimodal(config) -> bool:
    """True when the architecture has a vision tower."""
    return getattr(config, "vision_config", None) is not None


def _merge(base: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) else value
    return merged


def build_random_model(name: str, dtype: torch.dtype, device: torch.device) -> nn.Module:
    """The architecture `name` on `device` with weights ~ N(0, initializer_range), seeded by name."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    config = random_config(name)
    auto = AutoModelForImageTextToText if is_multimodal(config) else AutoModelForCausalLM
    with torch.device(device):
        model = auto.from_config(config, dtype=dtype)
    _seeded_init(model, config.initializer_range)
    return model.eval()


@torch.no_grad()
def _seeded_init(model: nn.Module, std: float) -> None:
    # Matrices get seeded normal draws, biases zeros; norms keep transformers' constant init.
    for name, parameter in model.named_parameters():
        if name.endswith("bias"):
            parameter.zero_()
        elif parameter.dim() >= 2:
            generator = generator_for(parameter.device, RANDOM_WEIGHTS_SEED, name)
            noise = torch.randn(parameter.shape, generator=generator, device=parameter.device)
            parameter.copy_(noise.mul_(std))


def random_processor(name: str):
    """The Gemma 3 processor (tokenizer + image processor) sized for `name`; a tokenizer if text-only."""
    from transformers import AutoTokenizer, Gemma3ImageProcessor, Gemma3Processor

    config = random_config(name)
    if not is_multimodal(config):
        return AutoTokenizer.from_pretrained(gemma3_tokenizer_folder())  # base model: raw prompts
    tokenizer = AutoTokenizer.from_pretrained(gemma3_tokenizer_folder(), extra_special_tokens=IMAGE_TOKENS)
    tokenizer.chat_template = GEMMA3_CHAT_TEMPLATE
    side = config.vision_config.image_size
    image_processor = Gemma3ImageProcessor(size={"height": side, "width": side})
    return Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                           image_seq_length=config.mm_tokens_per_image, chat_template=GEMMA3_CHAT_TEMPLATE)
