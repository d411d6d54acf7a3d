"""ModelEdits on the real embedded model: every decoding edit undone leaves the model and the process as loaded."""

import pytest
import torch

from degrader.baseline import Baseline
from degrader.decoding.attention import NAME, SPLIT_KV_NAME
from degrader.decoding.edits import RECOMPILE_LIMIT, ModelEdits, _registries, prepare_for_decoding
from degrader.decoding.fused import FusedRows
from degrader.decoding.generation import SamplingParams, decode, encode
from degrader.decoding.rep_batch import UnitStacks
from degrader.groups import resolve_group
from degrader.models import load_model

PROMPTS = ["The dream began in a house that", "Hello"]
PARAMS = SamplingParams(max_new_tokens=10)


@pytest.fixture(scope="module")
def loaded():
    """A second embedded model to edit (the session's `embedded` stays as loaded, for comparison)."""
    return load_model("embedded", dtype="float32", device="cpu")


def tokens(model, inputs) -> torch.Tensor:
    return decode(model, inputs, PARAMS, torch.tensor([1, 2]), [1], 0)


def hooks(model) -> list[str]:
    return [name for name, module in model.named_modules()
            if module._forward_pre_hooks or module._forward_hooks or module._forward_hooks_always_called]


def registered() -> list[dict]:
    return [{name: registry.get(name) for name in (NAME, SPLIT_KV_NAME)} for registry in _registries()]


def test_undo_leaves_the_model_and_the_process_as_they_were(embedded, loaded):
    model, inputs = loaded.model, encode(embedded, PROMPTS)
    params = dict(model.named_parameters())
    values = {name: p.detach().clone() for name, p in params.items()}
    modules = dict(model.named_modules())
    registry = registered()
    with torch.no_grad():
        logits = model(**inputs).logits
    expected = tokens(model, inputs)
    with torch._dynamo.config.patch(cache_size_limit=8):
        edits = prepare_for_decoding(model, None, static=True)
        limit = f"dynamo cache_size_limit {RECOMPILE_LIMIT}"
        assert edits.recorded == [f"attention {NAME}", "fused projections", limit]
        assert model.config._attn_implementation == NAME and torch._dynamo.config.cache_size_limit == RECOMPILE_LIMIT
        assert isinstance(model.model.layers[0].self_attn.q_proj, FusedRows) and hooks(model)
        assert all(p is params[name] and p._base is None for name, p in model.named_parameters())
        q = model.model.layers[0].self_attn.q_proj.weight  # its data is now a row block of the fused buffer
        assert q.untyped_storage().nbytes() > q.numel() * q.element_size()
        assert torch.equal(tokens(model, inputs), expected)
        baseline = Baseline(resolve_group(model, "attn_only"))  # taken on the fused views, as a worker does
        edits.undo()
        assert torch._dynamo.config.cache_size_limit == 8
    assert edits.recorded == [] and edits.fusion is None
    assert model.config._attn_implementation == "sdpa" and registered() == registry
    assert hooks(model) == []
    assert all(module is modules[name] for name, module in model.named_modules()) and len(modules) == \
        len(dict(model.named_modules()))
    assert all(p is params[name] and p._base is None and p.is_contiguous() and torch.equal(p, values[name])
               and p.untyped_storage().nbytes() == p.numel() * p.element_size()  # out of the fused buffer
               for name, p in model.named_parameters())
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, logits)  # bitwise: unfused, as loaded
    assert torch.equal(tokens(model, inputs), expected)
    with baseline.degraded("mult_gauss", 0.3, 5):  # the baseline still holds the model's parameters
        assert not torch.equal(model(**inputs).logits, logits)
    assert all(torch.equal(p, values[name]) for name, p in model.named_parameters())


def test_a_with_block_undoes_a_named_attention_and_a_bad_name_changes_nothing(loaded):
    model, limit = loaded.model, torch._dynamo.config.cache_size_limit
    with prepare_for_decoding(model, "eager", static=False) as edits:
        assert model.config._attn_implementation == "eager" and edits.fusion is not None and hooks(model)
        assert edits.recorded == ["attention eager", "fused projections"]  # eager decoding compiles nothing
        assert torch._dynamo.config.cache_size_limit == limit
    assert model.config._attn_implementation == "sdpa" and hooks(model) == []
    model.set_attn_implementation("eager")
    try:
        with pytest.raises(ValueError, match="needs a model that uses SDPA attention"):
            prepare_for_decoding(model, NAME, static=False)
        assert model.config._attn_implementation == "eager" and hooks(model) == []
    finally:
        model.set_attn_implementation("sdpa")


def test_undo_with_rep_stacks_installed_is_a_clear_error(loaded):
    model = loaded.model
    edits = ModelEdits()
    edits.fuse(model)
    stacks = UnitStacks(model, resolve_group(model, "attn_v"), 2)
    try:
        with stacks.applied(), pytest.raises(ValueError, match="uninstall the UnitStacks"):
            edits.undo()
        assert edits.recorded == ["fused projections"]  # still recorded: undo again once the stacks are gone
    finally:
        stacks.uninstall()
        edits.undo()
    assert hooks(model) == [] and edits.recorded == []
