"""Parameter groups: which weight tensors a lesion touches, resolved from the model's own names.

A group is a set of components (q, k, v, o; gate, up, down; embed; vision) of every
language-model layer. Layers are found by name (`...layers.N`, GPT-2's `...h.N`) outside the
vision tower, so counts follow the loaded model instead of being hard-coded. GPT-2 fuses q, k
and v into one `Conv1D` (`attn.c_attn`, weight [in, 3 * hidden]); its v is a view of that slice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

VISION_MODULES = ("vision_tower", "vision_model", "visual", "vision_encoder", "multi_modal_projector")
_LAYER = re.compile(r"^(?:.*\.)?(?:layers|h|blocks)\.(\d+)$")

# component -> module paths inside a decoder layer (Gemma/Llama/Qwen/Mistral first, then GPT-2)
COMPONENT_PATHS: dict[str, tuple[str, ...]] = {
    "q": ("self_attn.q_proj",),
    "k": ("self_attn.k_proj",),
    "v": ("self_attn.v_proj",),
    "o": ("self_attn.o_proj", "attn.c_proj"),
    "gate": ("mlp.gate_proj",),
    "up": ("mlp.up_proj", "mlp.c_fc"),
    "down": ("mlp.down_proj", "mlp.c_proj"),
}
FUSED_QKV_PATHS = ("attn.c_attn",)  # GPT-2 Conv1D, weight [in, 3 * hidden] = [q | k | v]


@dataclass(frozen=True)
class Target:
    """One tensor a lesion writes in place: a parameter, or a view of a slice of one."""

    name: str
    tensor: torch.Tensor


@dataclass(frozen=True)
class GroupSpec:
    """A named group: layer components, or a whole-model part ("embed", "vision")."""

    components: tuple[str, ...]
    description: str


GROUPS: dict[str, GroupSpec] = {
    "attn_only": GroupSpec(("v",), "value projection of every language-model layer"),
    "mlp_only": GroupSpec(("gate", "up", "down"), "gate, up and down projections of every language-model layer"),
    "embed_only": GroupSpec(("embed",), "token embedding (tied to the output head in Gemma)"),
    "vision_tower": GroupSpec(("vision",), "every weight matrix of the vision tower and projector"),
    **{f"attn_{c}": GroupSpec((c,), f"{c} projection of every language-model layer") for c in ("q", "k", "v", "o")},
    **{f"mlp_{c}": GroupSpec((c,), f"{c} projection of every language-model layer") for c in ("gate", "up", "down")},
}
_TARGETED = re.compile(r"^(?P<name>[a-z_]+)(?:\[(?P<start>-?\d*):(?P<stop>-?\d*)\])?$")


def parse_group(text: str) -> tuple[GroupSpec, slice]:
    """`attn_only`, or a group narrowed to a layer range: `attn_v[0:12]`, `mlp_down[20:]`, `mlp_only[-4:]`."""
    match = _TARGETED.match(text)
    if not match or match["name"] not in GROUPS:
        raise ValueError(f"unknown parameter group {text!r}; available: {', '.join(sorted(GROUPS))}, each "
                         "optionally narrowed to a layer range as NAME[start:stop], e.g. attn_v[0:12]")
    spec = GROUPS[match["name"]]
    layers = slice(*(int(match[k]) if match[k] else None for k in ("start", "stop")))
    if match["start"] is not None and any(c in WHOLE_MODEL_PARTS for c in spec.components):
        raise ValueError(f"{match['name']} is not made of layers: a layer range applies to attn_* and mlp_* groups")
    return spec, layers


def is_vision(name: str) -> bool:
    """True for a module or parameter name inside the vision tower or its projector."""
    return any(part in VISION_MODULES for part in name.split("."))


def language_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The decoder layers of the language model, in order, as (name, module)."""
    layers = [(name, module) for name, module in model.named_modules() if _LAYER.match(name) and not is_vision(name)]
    if not layers:
        raise ValueError(f"no language-model layers (names like 'model.layers.0') found in {type(model).__name__}")
    return layers


def _weight_of(layer_name: str, layer: nn.Module, path: str) -> Target | None:
    module = layer.get_submodule(path) if _has_submodule(layer, path) else None
    if module is None or getattr(module, "weight", None) is None:
        return None
    return Target(f"{layer_name}.{path}.weight", module.weight)


def _has_submodule(module: nn.Module, path: str) -> bool:
    try:
        module.get_submodule(path)
    except AttributeError:
        return False
    return True


def _fused_v(layer_name: str, layer: nn.Module) -> Target | None:
    for path in FUSED_QKV_PATHS:
        found = _weight_of(layer_name, layer, path)
        if found is not None:
            width = found.tensor.shape[1] // 3
            return Target(f"{found.name}[v]", found.tensor[:, 2 * width :])
    return None


def _layer_component(layer_name: str, layer: nn.Module, component: str) -> Target | None:
    for path in COMPONENT_PATHS[component]:
        found = _weight_of(layer_name, layer, path)
        if found is not None:
            return found
    return _fused_v(layer_name, layer) if component == "v" else None


def _embedding(model: nn.Module) -> list[Target]:
    weight = model.get_input_embeddings().weight
    return [Target(name, p) for name, p in model.named_parameters() if p is weight]


def _vision(model: nn.Module) -> list[Target]:
    return [Target(name, p) for name, p in model.named_parameters() if is_vision(name) and p.dim() >= 2]


def _found_summary(model: nn.Module) -> str:
    layers = [name for name, _ in model.named_modules() if _LAYER.match(name)]
    sample = [name for name, _ in model.named_parameters()][:12]
    return f"layers found: {len(layers)} (e.g. {layers[:3]}); first parameters: {sample}"


WHOLE_MODEL_PARTS = {"embed": _embedding, "vision": _vision}


def resolve_group(model: nn.Module, name: str) -> list[Target]:
    """The tensors of group `name` in `model`, layer by layer; a group that matches nothing raises."""
    spec, layers = parse_group(name)
    targets = [t for part in spec.components if part in WHOLE_MODEL_PARTS for t in WHOLE_MODEL_PARTS[part](model)]
    components = [part for part in spec.components if part in COMPONENT_PATHS]
    if components:
        targets += _layer_targets(model, components, layers)
    if not targets:
        raise ValueError(f"parameter group {name!r} ({spec.description}) matches nothing in "
                         f"{type(model).__name__}; {_found_summary(model)}")
    return targets


def _layer_targets(model: nn.Module, components: list[str], layers: slice) -> list[Target]:
    everything = language_layers(model)
    chosen = everything[layers]
    if not chosen:
        raise ValueError(f"layer range [{layers.start}:{layers.stop}] selects none of the {len(everything)} "
                         "language-model layers")
    found = [_layer_component(n, layer, c) for n, layer in chosen for c in components]
    return [target for target in found if target is not None]
