"""Fused projections on the real embedded model: same parameters, same tokens, one product per set."""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from degrader.baseline import Baseline
from degrader.decoding.fused import FusedRows, fuse_projections
from degrader.decoding.generation import SamplingParams, decode, encode, tile_rows
from degrader.decoding.rep_batch import UnitStacks
from degrader.groups import resolve_group
from degrader.models import load_model

PROMPTS = ["The dream began in a house that", "I was walking by the sea and"]
GREEDY = SamplingParams(max_new_tokens=12, do_sample=False)
LAYERS = 18  # Gemma 3 270M
LINEAR_CALLS = {"fused": LAYERS * 4 + 1, "unfused": LAYERS * 7 + 1}  # q|k|v, o, gate|up, down per layer; the head


@pytest.fixture(scope="module")
def fused():
    """A second embedded model, fused (the session's `embedded` stays as loaded, for comparison)."""
    loaded = load_model("embedded", dtype="float32", device="cpu")
    return loaded, fuse_projections(loaded.model)


class CountLinear(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += func is torch.nn.functional.linear
        return func(*args, **(kwargs or {}))


def greedy(model, inputs) -> torch.Tensor:
    return decode(model, inputs, GREEDY, torch.tensor([1, 2]), [1], 0)


def linear_calls(model, input_ids) -> int:
    with CountLinear() as counter, torch.no_grad():
        model(input_ids=input_ids)
    return counter.calls


def test_every_parameter_keeps_its_name_and_value_as_a_row_block_of_one_buffer(embedded, fused):
    loaded, fusion = fused
    assert len(fusion.sets) == 2 * LAYERS
    clean = dict(embedded.model.named_parameters())
    params = dict(loaded.model.named_parameters())
    assert list(params) == list(clean) and all(torch.equal(params[n], clean[n]) for n in clean)
    layer = loaded.model.model.language_model.layers[0] if hasattr(loaded.model.model, "language_model") \
        else loaded.model.model.layers[0]
    q, k, v = (getattr(layer.self_attn, n) for n in ("q_proj", "k_proj", "v_proj"))
    assert all(isinstance(m, FusedRows) for m in (q, k, v))
    storage = q.weight.untyped_storage().data_ptr()
    assert k.weight.untyped_storage().data_ptr() == storage == v.weight.untyped_storage().data_ptr()
    assert k.weight.data_ptr() == q.weight.data_ptr() + q.weight.numel() * q.weight.element_size()
    gate, up = layer.mlp.gate_proj, layer.mlp.up_proj
    assert isinstance(up, FusedRows) and up.weight.data_ptr() == gate.weight.data_ptr() + gate.weight.nbytes


def test_one_product_per_set_and_the_same_tokens_also_after_a_lesion(embedded, fused):
    loaded, fusion = fused
    inputs = encode(embedded, PROMPTS)
    assert linear_calls(loaded.model, inputs["input_ids"]) == LINEAR_CALLS["fused"]
    with fusion.paused():
        assert linear_calls(loaded.model, inputs["input_ids"]) == LINEAR_CALLS["unfused"]
    assert linear_calls(embedded.model, inputs["input_ids"]) == LINEAR_CALLS["unfused"]
    assert torch.equal(greedy(loaded.model, inputs), greedy(embedded.model, inputs))

    def lesion_of(model):  # a member inside each fused set
        return Baseline(resolve_group(model, "attn_k") + resolve_group(model, "mlp_gate"))

    clean, lesioned = lesion_of(embedded.model), lesion_of(loaded.model)
    with clean.degraded("mult_gauss", 0.3, 5), lesioned.degraded("mult_gauss", 0.3, 5):  # in place, through the views
        assert torch.equal(greedy(loaded.model, inputs), greedy(embedded.model, inputs))
        with torch.no_grad():
            assert torch.allclose(loaded.model(**inputs).logits, embedded.model(**inputs).logits, atol=1e-4)


def test_the_compiled_graph_holds_one_product_per_set(fused):
    loaded, _ = fused
    graphs = []

    def record(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    step = torch.compile(lambda ids: loaded.model(input_ids=ids).logits, backend=record, fullgraph=True)
    ids = torch.tensor([[2, 651, 6037]])
    with torch.no_grad():
        assert torch.allclose(step(ids), loaded.model(input_ids=ids).logits)
    linear = [n for n in graphs[0].graph.nodes if n.target is torch._C._nn.linear]
    assert len(graphs) == 1 and len(linear) == LINEAR_CALLS["fused"]


@pytest.mark.parametrize("group,calls", [("attn_only", LAYERS * 4 + 1), ("attn_q", LAYERS * 4 + 1),
                                         ("attn_k", LAYERS * 5 + 1), ("mlp_gate", LAYERS * 4 + 1),
                                         ("mlp_only", LAYERS * 2 + 1)])
def test_rep_stacks_on_a_fused_model_give_the_per_unit_tokens(embedded, fused, group, calls):
    """The swapped projections use their own copies; of the others, those whose rows stay one block share a
    product: attn_only swaps v (q|k one product), attn_q swaps q (k|v, read at an offset), attn_k leaves q and v
    apart (each its own), mlp_gate leaves up alone, mlp_only swaps gate, up and down."""
    loaded, _ = fused
    inputs = encode(embedded, PROMPTS)
    rows = torch.tensor([1, 2])
    clean = Baseline(resolve_group(embedded.model, group))
    expected = []
    for seed in (42, 43):
        with clean.degraded("mult_gauss", 0.4, seed):
            expected.append(decode(embedded.model, inputs, GREEDY, rows, [1], 0))
    stacks = UnitStacks(loaded.model, resolve_group(loaded.model, group), 2)
    stacks.degrade("mult_gauss", [0.4, 0.4], [42, 43])
    with stacks.applied():
        # the stacked layers multiply by torch.matmul, the others keep their fused products
        assert linear_calls(loaded.model, inputs["input_ids"].repeat(2, 1)) == calls
        got = decode(loaded.model, tile_rows(inputs, 2), GREEDY, rows.repeat(2), [1], 0)
    assert torch.equal(got, torch.cat(expected))


def test_biased_projections_of_the_vision_tower_give_the_same_image_features(tiny_multimodal):
    from PIL import Image

    loaded = load_model("random:tiny-gemma3", dtype="float32", device="cpu")  # the same seeded weights
    fusion = fuse_projections(loaded.model)
    biased = [rows for parent, _, rows in fusion.sets if type(parent).__name__ == "SiglipAttention"]
    assert biased and all(row.bias is not None for rows in biased for row in rows)
    inputs = encode(tiny_multimodal, ["Describe the picture."], Image.new("RGB", (64, 48), (200, 30, 30)))
    with torch.no_grad():
        expected = tiny_multimodal.model(**inputs).logits
        with CountLinear() as fused_count:
            assert torch.allclose(loaded.model(**inputs).logits, expected, atol=1e-5, rtol=1e-4)
        with fusion.paused(), CountLinear() as plain_count:
            loaded.model(**inputs)
    assert plain_count.calls - fused_count.calls == sum(len(names) - 1 for _, names, _ in fusion.sets)  # one each


def test_pausing_nests_and_a_failed_forward_leaves_no_product_behind(fused):
    loaded, fusion = fused
    ids = torch.tensor([[2, 651, 6037]])
    with fusion.paused():
        with fusion.paused():
            pass
        assert linear_calls(loaded.model, ids) == LINEAR_CALLS["unfused"]  # still paused after the inner block
    assert linear_calls(loaded.model, ids) == LINEAR_CALLS["fused"]
    attention = next(parent for parent, names, _ in fusion.sets if "q_proj" in names)
    output = attention.o_proj
    attention.o_proj = None  # the forward fails after the fused product was taken
    try:
        with pytest.raises(TypeError), torch.no_grad():
            loaded.model(input_ids=ids)
    finally:
        attention.o_proj = output
    assert all(product.input is None and product.output is None for product in fusion.products)
