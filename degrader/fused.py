"""Fused projections: the products of a module's input with several weights, run as one product.

A Gemma 3 layer multiplies the same input by three weights for attention (q, k, v) and by two for the
MLP (gate, up). At decode batch sizes each product is short and bound by reading its weight, and
small ones run far below the bandwidth: on an H100 at 38 rows q, k and v take 6.0 + 6.1 + 6.1 us,
the one product over their concatenated rows 6.5 us; all products of a decode step take 3.25 ms
apart, 2.83 ms fused (`scripts/bench_matmul.py`).

The weights of a fused set move into one buffer, and each projection's parameter becomes its row
block (a view) under the same name: the baseline, the lesions (in place), the rep stacks and the
parameter counts see the same parameters as before. A forward pre-hook on the parent module
multiplies its input by the buffer's rows of the projections it still holds (a rep stack may swap
some out: `attn_only` swaps v, and q|k stay one product); each projection returns its columns of that
product when its input is that same tensor, and otherwise computes its own (the fusion paused,
another caller). Nothing changes for code that calls a projection alone. Gemma 3's MLP instead runs
gate|up and its activation in one step (`degrader/mlp_kernel.py`: one kernel for decode batches).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from degrader import mlp_kernel
from degrader.quantized import is_4bit

FUSED_SETS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))  # attribute names that share an input


class _Product:
    """The parent's input and its product with the fused weight, held only during the parent's forward."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        self.weight, self.bias = weight, bias
        for tensor in (weight, bias):  # a compiled step with CUDA graphs must not copy them in at every replay
            if tensor is not None:
                torch._dynamo.mark_static_address(tensor)
        self.input: torch.Tensor | None = None
        self.output: torch.Tensor | None = None  # input x the weight's rows [offset, offset + output columns)
        self.offset = 0
        self.enabled = True


class FusedRows(nn.Linear):
    """A projection whose weight is rows [start, stop) of a fused weight: reads the shared product when it can."""

    def __init__(self, base: nn.Linear, product: _Product, start: int, stop: int):
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = nn.Parameter(product.weight[start:stop], requires_grad=False)
        self.bias = None if product.bias is None else nn.Parameter(product.bias[start:stop], requires_grad=False)
        self.product, self.start, self.stop = product, start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        product = self.product
        if product.output is not None and product.input is x:
            return product.output[..., self.start - product.offset: self.stop - product.offset]
        return nn.functional.linear(x, self.weight, self.bias)


class Fusion:
    """The fused sets of one model; `paused()` makes every projection compute its own product."""

    def __init__(self, sets: list[tuple[nn.Module, tuple[str, ...], list[FusedRows]]]):
        self.sets = sets
        self.products = [rows[0].product for _, _, rows in sets]
        self.hooks = []
        for parent, names, rows in sets:
            if _gelu_mlp(parent, names):
                _fuse_activation(parent, rows)
            else:
                self.hooks += _hook(parent, names, rows)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Each projection multiplies on its own in the block (as the model did before fusing)."""
        for product in self.products:
            product.enabled = False
        try:
            yield
        finally:
            for product in self.products:
                product.enabled = True


@torch.no_grad()
def fuse_projections(model: nn.Module) -> Fusion:
    """Fuse every set of FUSED_SETS whose members are plain Linear layers of one input size, dtype and device."""
    sets = []
    for parent in list(model.modules()):
        for names in FUSED_SETS:
            members = [getattr(parent, name, None) for name in names]
            if _fusable(members):
                sets.append((parent, names, _fuse(parent, names, members)))
    return Fusion(sets)


def _fusable(members: list) -> bool:
    if not all(type(m) is nn.Linear and not is_4bit(m.weight) for m in members):
        return False
    first = members[0].weight
    return all(m.in_features == members[0].in_features and m.weight.dtype == first.dtype
               and m.weight.device == first.device and (m.bias is None) == (members[0].bias is None)
               for m in members)


def _fuse(parent: nn.Module, names: tuple[str, ...], members: list[nn.Linear]) -> list[FusedRows]:
    weight = torch.cat([m.weight.detach() for m in members])
    bias = None if members[0].bias is None else torch.cat([m.bias.detach() for m in members])
    product, rows, start = _Product(weight, bias), [], 0
    for name, member in zip(names, members):
        rows.append(FusedRows(member, product, start, start + member.out_features))
        setattr(parent, name, rows[-1])
        start += member.out_features
    return rows


def _hook(parent: nn.Module, names: tuple[str, ...], rows: list[FusedRows]) -> list:
    product = rows[0].product

    def before(module, args, kwargs):
        # the product of the projections still installed (a rep stack may have swapped some) when their
        # rows are one block: all of them, or e.g. q|k while v is rep-batched
        x = args[0] if args else kwargs.get("hidden_states", kwargs.get("x"))
        live = [row for name, row in zip(names, rows) if getattr(module, name) is row]
        block = len(live) > 1 and all(a.stop == b.start for a, b in zip(live, live[1:]))
        if product.enabled and block and isinstance(x, torch.Tensor) and x.shape[-1] == rows[0].in_features:
            start, stop = live[0].start, live[-1].stop
            bias = None if product.bias is None else product.bias[start:stop]
            product.input, product.offset = x, start
            product.output = nn.functional.linear(x, product.weight[start:stop], bias)

    def after(module, args, kwargs, output):
        product.input = product.output = None

    return [parent.register_forward_pre_hook(before, with_kwargs=True),
            parent.register_forward_hook(after, with_kwargs=True, always_call=True)]


def _gelu_mlp(parent: nn.Module, names: tuple[str, ...]) -> bool:
    """Gemma 3's MLP with its tanh GELU: down(gelu_tanh(gate(x)) * up(x))."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3MLP

    return (isinstance(parent, Gemma3MLP) and names == ("gate_proj", "up_proj")
            and getattr(parent.config, "hidden_activation", None) == "gelu_pytorch_tanh")


def _fuse_activation(parent: nn.Module, rows: list[FusedRows]) -> None:
    """The MLP's forward with gate|up and the activation as one kernel where it applies (degrader/mlp_kernel.py)."""
    product, original = rows[0].product, parent.forward
    kernel = mlp_kernel.available(product.weight.device)

    def forward(x: torch.Tensor) -> torch.Tensor:
        if product.enabled and product.bias is None and parent.gate_proj is rows[0] and parent.up_proj is rows[1]:
            return parent.down_proj(mlp_kernel.gate_up_gelu(x, product.weight, kernel))
        return original(x)  # a rep stack swapped gate or up, or the fusion is paused

    parent.forward = forward
