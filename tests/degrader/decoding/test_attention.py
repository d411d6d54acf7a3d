"""Grouped single-token decode attention equals transformers' SDPA attention."""

import sys

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from degrader.decoding.attention import NAME, grouped_decode_sdpa, use_grouped_decode_attention
from degrader.decoding.generation import SamplingParams, decode, encode
from degrader.models import load_model
from tests.conftest import interpreted_outputs


class Attention(torch.nn.Module):
    num_key_value_groups = 4


@pytest.mark.parametrize("q_len", [1, 3])
def test_matches_sdpa_with_repeated_key_value_heads(q_len):
    generator = torch.Generator().manual_seed(0)
    query = torch.randn(3, 8, q_len, 16, generator=generator)
    key, value = (torch.randn(3, 2, 10, 16, generator=generator) for _ in range(2))
    mask = torch.rand(3, 1, q_len, 10, generator=generator) > 0.3
    mask[..., 0] = True  # every row attends somewhere
    expected, _ = sdpa_attention_forward(Attention(), query, key, value, mask, scaling=0.25)
    got, _ = grouped_decode_sdpa(Attention(), query, key, value, mask, scaling=0.25)
    assert got.shape == expected.shape == (3, q_len, 8, 16)
    torch.testing.assert_close(got, expected)


def test_the_embedded_model_decodes_the_same_tokens_with_it(monkeypatch):
    import degrader.decoding.attention as attention

    packed_calls = []
    real = attention._decode_backends
    monkeypatch.setattr(attention, "_decode_backends", lambda device: packed_calls.append(device) or real(device))

    loaded = load_model("embedded", dtype="float32", device="cpu")  # its own copy: the switch is per model
    inputs = encode(loaded, ["The dream began in a house that", "Hello"])
    params, seeds = SamplingParams(max_new_tokens=12), torch.tensor([1, 2])
    expected = decode(loaded.model, inputs, params, seeds, [1], 0)
    assert use_grouped_decode_attention(loaded.model) and loaded.model.config._attn_implementation == NAME
    assert torch.equal(decode(loaded.model, inputs, params, seeds, [1], 0), expected)
    assert len(packed_calls) == 18 * 11  # every layer at every single-token step took the packed path
    loaded.model.set_attn_implementation("eager")
    assert not use_grouped_decode_attention(loaded.model)  # only an SDPA model is switched


def run_split_kv(path: str) -> None:
    """In a child with triton's interpreter on: the embedded model's greedy tokens through SDPA and the kernel."""
    from degrader.decoding import decode_kernel

    assert decode_kernel.available("cpu")  # the interpreter is on
    loaded = load_model("embedded", dtype="float32", device="cpu")
    inputs = encode(loaded, ["The dream began in a house that", "Hello"])  # left padding on the second row
    params, seeds = SamplingParams(max_new_tokens=12, do_sample=False), torch.tensor([1, 2])
    use_grouped_decode_attention(loaded.model, split_kv=False)
    expected = decode(loaded.model, inputs, params, seeds, [1], 0)
    calls, real = [], decode_kernel.split_kv_decode
    decode_kernel.split_kv_decode = lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs)
    use_grouped_decode_attention(loaded.model, split_kv=True)
    got = decode(loaded.model, inputs, params, seeds, [1], 0)
    torch.save({"implementation": loaded.model.config._attn_implementation, "calls": len(calls),
                "expected": expected, "got": got}, path)


def test_the_embedded_model_decodes_the_same_tokens_through_the_split_kv_kernel(tmp_path):
    """The kernel in the real model's decode loop (triton's interpreter, on CPU, in a child process)."""
    pytest.importorskip("triton", minversion="3.6")
    result = interpreted_outputs(__file__, tmp_path / "split_kv.pt", timeout=900)
    assert result["implementation"] == "degrader_split_kv"
    assert result["calls"] == 18 * 11  # every layer at every single-token step went through the kernel
    assert torch.equal(result["got"], result["expected"])


if __name__ == "__main__":
    run_split_kv(sys.argv[1])
