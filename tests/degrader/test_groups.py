import json
from pathlib import Path

import pytest
import torch
from torch import nn

from degrader.groups import is_vision, resolve_group

CONFIG = Path(__file__).resolve().parents[2] / "degrader" / "architectures" / "gemma-3-4b-it.json"


@pytest.fixture(scope="module")
def gemma_4b_meta():
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        return Gemma3ForConditionalGeneration(Gemma3Config.from_dict(json.loads(CONFIG.read_text())))


@pytest.mark.parametrize("group,count", [("attn_only", 34), ("mlp_only", 102), ("embed_only", 1)])
def test_gemma_3_4b_groups_have_the_thesis_counts_and_no_vision(gemma_4b_meta, group, count):
    targets = resolve_group(gemma_4b_meta, group)
    assert len(targets) == count
    assert not any(is_vision(t.name) for t in targets)
    assert all(".language_model." in t.name for t in targets)


def test_suffix_match_would_have_caught_27_siglip_value_projections(gemma_4b_meta):
    suffix_matches = [n for n, _ in gemma_4b_meta.named_parameters() if n.endswith("v_proj.weight")]
    assert len(suffix_matches) == 34 + 27


def test_vision_tower_is_its_own_group(gemma_4b_meta):
    targets = resolve_group(gemma_4b_meta, "vision_tower")
    assert targets and all(is_vision(t.name) for t in targets)
    assert sum(t.name.endswith("self_attn.v_proj.weight") for t in targets) == 27


def test_embedding_is_tied_to_the_output_head(gemma_4b_meta):
    (embedding,) = resolve_group(gemma_4b_meta, "embed_only")
    assert embedding.tensor is gemma_4b_meta.lm_head.weight


def test_llama_style_names():
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=3, hidden_size=64, intermediate_size=128,
                                             num_attention_heads=4, vocab_size=100))
    assert [t.name for t in resolve_group(model, "attn_only")] == [f"model.layers.{i}.self_attn.v_proj.weight"
                                                                  for i in range(3)]
    assert len(resolve_group(model, "mlp_only")) == 9


def test_gpt2_value_is_a_view_of_the_fused_conv1d():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64))
    targets = resolve_group(model, "attn_only")
    assert [t.name for t in targets] == [f"transformer.h.{i}.attn.c_attn.weight[v]" for i in range(2)]
    fused = model.transformer.h[0].attn.c_attn.weight
    with torch.no_grad():
        targets[0].tensor.fill_(7.0)
    assert bool((fused[:, 64:] == 7).all()) and not bool((fused[:, :64] == 7).any())
    assert [t.name.split(".")[-2] for t in resolve_group(model, "mlp_only")] == ["c_fc", "c_proj"] * 2
    assert resolve_group(model, "embed_only")[0].name == "transformer.wte.weight"


def test_unknown_group_lists_the_registry(gemma_4b_meta):
    with pytest.raises(ValueError, match="attn_only, attn_q, attn_v, embed_only, mlp_down, mlp_gate"):
        resolve_group(gemma_4b_meta, "attention")


def test_architecture_without_layers_is_a_clear_error():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4))
    with pytest.raises(ValueError, match="no language-model layers"):
        resolve_group(model, "attn_only")


def test_group_matching_nothing_lists_what_was_found():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16))
    with pytest.raises(ValueError, match=r"matches nothing.*transformer\.h\.0"):
        resolve_group(model, "vision_tower")


@pytest.mark.parametrize("name,count,first,last", [
    ("attn_v[0:12]", 12, "layers.0.self_attn.v_proj", "layers.11.self_attn.v_proj"),
    ("mlp_down[20:]", 14, "layers.20.mlp.down_proj", "layers.33.mlp.down_proj"),
    ("attn_q", 34, "layers.0.self_attn.q_proj", "layers.33.self_attn.q_proj"),
    ("mlp_only[-2:]", 6, "layers.32.mlp.gate_proj", "layers.33.mlp.down_proj"),
    ("attn_o[5:6]", 1, "layers.5.self_attn.o_proj", "layers.5.self_attn.o_proj"),
])
def test_targeted_groups_resolve_to_the_expected_tensors(gemma_4b_meta, name, count, first, last):
    targets = resolve_group(gemma_4b_meta, name)
    assert len(targets) == count
    assert f".language_model.{first}.weight" in targets[0].name and f".language_model.{last}.weight" in targets[-1].name


@pytest.mark.parametrize("name,message", [("attn_x[0:2]", "NAME\\[start:stop\\]"),
                                          ("attn_v[40:]", "selects none of the 34"),
                                          ("embed_only[0:3]", "not made of layers"), ("attn_v[0-3]", "unknown")])
def test_bad_targets_are_clear_errors(gemma_4b_meta, name, message):
    with pytest.raises(ValueError, match=message):
        resolve_group(gemma_4b_meta, name)
