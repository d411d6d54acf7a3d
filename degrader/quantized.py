"""Lesions of bitsandbytes 4-bit weights: degraded in their dequantized values, then quantized again.

A 4-bit parameter (`Params4bit`) holds packed bytes and a quantization state (absmax per block, and
for double quantization a nested state). Arithmetic on the packed bytes would be meaningless, so a
lesion dequantizes the tensor, applies the method to the real-valued weights (the same draws as an
unquantized tensor of that shape), quantizes the result with the same settings and writes bytes and
state back in place. The baseline keeps the bytes and every state tensor, so restores are exact.
"""

from __future__ import annotations

import torch


def is_4bit(tensor: torch.Tensor) -> bool:
    """True for a bitsandbytes 4-bit parameter with its quantization state."""
    return type(tensor).__name__ == "Params4bit" and getattr(tensor, "quant_state", None) is not None


def state_tensors(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The packed bytes and every tensor of the quantization state, in a fixed order."""
    state = tensor.quant_state
    tensors = [tensor.data, state.absmax]
    if getattr(state, "nested", False):
        tensors += [state.offset, state.state2.absmax]
    return tensors


def dequantized(tensor: torch.Tensor) -> torch.Tensor:
    """The real-valued weights of a 4-bit parameter, in float32, with their original shape."""
    import bitsandbytes.functional as bnbf

    return bnbf.dequantize_4bit(tensor.data, tensor.quant_state).float()


@torch.no_grad()
def apply_4bit(tensor: torch.Tensor, lesion) -> None:
    """Dequantize, run `lesion(weights)` in place, quantize with the same settings, write back in place."""
    import bitsandbytes.functional as bnbf

    state = tensor.quant_state
    weights = dequantized(tensor)
    lesion(weights)
    packed, new_state = bnbf.quantize_4bit(weights.to(state.dtype), blocksize=state.blocksize,
                                           compress_statistics=bool(getattr(state, "nested", False)),
                                           quant_type=state.quant_type)
    new = _Packed(packed, new_state)
    for old, fresh in zip(state_tensors(tensor), state_tensors(new), strict=True):
        old.copy_(fresh)


class _Packed:
    """Lets `state_tensors` read a freshly quantized (bytes, state) pair like a parameter."""

    def __init__(self, data: torch.Tensor, quant_state):
        self.data, self.quant_state = data, quant_state
