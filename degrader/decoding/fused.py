"""Fused projections: the products of a module's input with several weights, run as one product.

A Gemma 3 layer multiplies the same input by three weights for attention (q, k, v) and by two for the
MLP (gate, up). At decode batch sizes each product is short and bound by reading its weight, and the
small ones run far below the bandwidth: in a compiled decode step at 38 rows on an H100, q, k and v
took 7.0 + 6.3 + 6.3 us, one product over their concatenated rows 10.0 us (`scripts/profile_decode.py`);
all products of a step 3.25 ms apart, 2.83 ms fused (`scripts/bench_matmul.py`).

The weights of a fused set move into one buffer, and each projection's parameter (the same Parameter
object, its data swapped) becomes its row block (a view) under the same name: the baseline, the lesions
(in place), the rep stacks and the parameter counts see the same parameters as before. FUSED_SETS
names, per module class, the projections that read the module's input. A forward pre-hook on such a
module multiplies its input by the buffer rows of the projections it still holds, when those rows are
one block (a rep stack may swap some out: `attn_only` swaps v, and q|k stay one product; with k
swapped, q and v run alone); each projection returns its columns of that product when its input is
that same tensor, and otherwise computes its own. Nothing changes for code that calls a projection alone.

The views tie the parameters to the buffer: move or cast the model before fusing, never after.
`Fusion.undo()` gives every parameter a contiguous copy of its rows again (the same Parameter object, so a
Baseline taken before or after fusing stays valid) and puts the original Linear modules back, hooks
removed: the model computes bitwise as before fusing. Undo with no rep stacks installed (it raises
otherwise) and after dropping compiled decode steps (their graphs read the buffer).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from degrader.quantized import is_4bit

# module class -> the projections its forward applies to its input, that same tensor unchanged (the shared
# product is used only for that tensor object), in the order of their rows in the buffer
FUSED_SETS = {
    "Gemma3Attention": ("q_proj", "k_proj", "v_proj"),
    "SiglipAttention": ("q_proj", "k_proj", "v_proj"),  # Gemma 3's vision tower
    "Gemma3MLP": ("gate_proj", "up_proj"),
}
INPUT_NAMES = ("hidden_states", "x")  # how these modules' forward names its input


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

    def clear(self) -> None:
        self.input = self.output = None


class FusedRows(nn.Linear):
    """A projection whose weight is rows [start, stop) of a fused weight: reads the shared product when it can."""

    def __init__(self, base: nn.Linear, product: _Product, start: int, stop: int):
        """`base`'s own parameters, their data already rows [start, stop) of the product's buffers."""
        nn.Module.__init__(self)
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.product, self.start, self.stop = product, start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        product = self.product
        if product.output is not None and product.input is x:
            return product.output[..., self.start - product.offset: self.stop - product.offset]
        return nn.functional.linear(x, self.weight, self.bias)


class Fusion:
    """The fused sets of one model; `paused()` makes every projection compute its own product, `undo()` unfuses."""

    def __init__(self, sets: list[tuple[nn.Module, tuple[str, ...], list[FusedRows]]],
                 members: list[list[nn.Linear]], handles: list[RemovableHandle]):
        self.sets = sets
        self.members = members  # per set, the original Linear modules (their parameters are the rows' parameters)
        self.handles = handles  # the parents' forward hooks
        self.products = [rows[0].product for _, _, rows in sets]

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Each projection multiplies on its own in the block (as the model did before fusing)."""
        before = [product.enabled for product in self.products]
        for product in self.products:
            product.enabled = False
        try:
            yield
        finally:
            for product, enabled in zip(self.products, before, strict=True):
                product.enabled = enabled

    def undo(self) -> None:
        """Unfuse: hooks removed, the original modules back, each parameter a contiguous copy of its rows."""
        for parent, names, rows in self.sets:
            swapped = [name for name, row in zip(names, rows, strict=True) if getattr(parent, name) is not row]
            if swapped:
                raise ValueError(f"{type(parent).__name__}.{swapped[0]} is not its fused projection (rep stacks "
                                 "installed?): uninstall the UnitStacks before undoing the fusion")
        for handle in self.handles:
            handle.remove()
        with torch.inference_mode(False), torch.no_grad():  # plain tensors: a Baseline copies into them later
            for (parent, names, _), members in zip(self.sets, self.members, strict=True):
                for name, member in zip(names, members, strict=True):
                    _own_copy(member.weight)
                    if member.bias is not None:
                        _own_copy(member.bias)
                    setattr(parent, name, member)
        for product in self.products:
            product.clear()
            product.weight = product.bias = None  # frees the buffers
        self.sets, self.members, self.handles, self.products = [], [], [], []


def _own_copy(parameter: nn.Parameter) -> None:
    """The parameter's data becomes a fresh contiguous copy of itself (no longer a view of a fused buffer)."""
    parameter.data = parameter.data.clone(memory_format=torch.contiguous_format)


@torch.no_grad()
def fuse_projections(model: nn.Module) -> Fusion:
    """Fuse the FUSED_SETS of every module whose projections are plain Linear layers of one input size, dtype
    and device (4-bit layers stay as they are)."""
    sets, originals, handles = [], [], []
    for parent in list(model.modules()):
        names = FUSED_SETS.get(type(parent).__name__)
        members = [getattr(parent, name, None) for name in names or ()]
        if names and _fusable(members):
            rows = _fuse(parent, names, members)
            handles += _hook(parent, names, rows)
            sets.append((parent, names, rows))
            originals.append(members)
    return Fusion(sets, originals, handles)


def _fusable(members: list) -> bool:
    if not all(type(m) is nn.Linear and not is_4bit(m.weight) for m in members):
        return False
    first = members[0]
    return all(m.in_features == first.in_features and m.weight.dtype == first.weight.dtype
               and m.weight.device == first.weight.device and (m.bias is None) == (first.bias is None)
               for m in members)


def _fuse(parent: nn.Module, names: tuple[str, ...], members: list[nn.Linear]) -> list[FusedRows]:
    weight = torch.cat([m.weight.detach() for m in members])
    bias = None if members[0].bias is None else torch.cat([m.bias.detach() for m in members])
    product, rows, start = _Product(weight, bias), [], 0
    for name, member in zip(names, members, strict=True):
        stop = start + member.out_features
        # the same Parameter objects, now views: whatever holds them (a Baseline) holds the fused weights
        member.weight.data = weight[start:stop]
        if bias is not None:
            member.bias.data = bias[start:stop]
        rows.append(FusedRows(member, product, start, stop))
        setattr(parent, name, rows[-1])
        start = stop
    return rows


def _hook(parent: nn.Module, names: tuple[str, ...], rows: list[FusedRows]) -> list[RemovableHandle]:
    product = rows[0].product

    def before(module, args, kwargs):
        product.clear()
        if not product.enabled:
            return
        x = args[0] if args else next((kwargs[n] for n in INPUT_NAMES if n in kwargs), None)
        live = [row for name, row in zip(names, rows, strict=True) if getattr(module, name) is row]
        block = len(live) > 1 and all(a.stop == b.start for a, b in zip(live, live[1:], strict=False))
        if block and isinstance(x, torch.Tensor) and x.shape[-1] == rows[0].in_features:
            start, stop = live[0].start, live[-1].stop
            bias = None if product.bias is None else product.bias[start:stop]
            product.input, product.offset = x, start
            product.output = nn.functional.linear(x, product.weight[start:stop], bias)

    return [parent.register_forward_pre_hook(before, with_kwargs=True),
            parent.register_forward_hook(lambda *_: product.clear(), always_call=True)]

