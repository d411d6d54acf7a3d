import hashlib
import subprocess
import sys
import textwrap

import pytest
import torch

from degrader.baseline import Baseline
from degrader.decoding.generation import perplexity
from degrader.groups import resolve_group
from tests.conftest import PARAGRAPH, ROOT

GROUP_LEVELS = {"attn_only": [0.0, 0.3, 0.6, 1.0], "mlp_only": [0.0, 0.1, 0.2, 0.4], "embed_only": [0.0, 0.3, 0.6]}


def state_copy(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def assert_bitwise_equal(model, reference: dict[str, torch.Tensor]) -> None:
    changed = [name for name, p in model.named_parameters() if not torch.equal(p, reference[name])]
    assert not changed, f"changed: {changed[:5]}"


@pytest.mark.parametrize("group", sorted(GROUP_LEVELS))
def test_perplexity_rises_with_mult_gauss_level(embedded, group):
    baseline = Baseline(resolve_group(embedded.model, group))
    mean_perplexity = []
    for level in GROUP_LEVELS[group]:
        values = []
        for repeat_index in range(2):
            with baseline.degraded("mult_gauss", level, 42 + repeat_index):
                values.append(perplexity(embedded, PARAGRAPH))
        mean_perplexity.append(sum(values) / len(values))
    assert mean_perplexity == sorted(mean_perplexity), mean_perplexity
    assert mean_perplexity[-1] > 1.5 * mean_perplexity[0]


def test_level_zero_leaves_the_model_bitwise_identical(embedded):
    reference = state_copy(embedded.model)
    baseline = Baseline(resolve_group(embedded.model, "mlp_only"))
    for method in ("mult_gauss", "ablation"):
        baseline.restore()
        baseline.degrade(method, 0.0, 42)
        assert_bitwise_equal(embedded.model, reference)


def test_restore_is_exact_after_many_units(embedded):
    reference = state_copy(embedded.model)
    for group in ("attn_only", "mlp_only", "embed_only"):
        baseline = Baseline(resolve_group(embedded.model, group))
        for repeat_index, (method, level) in enumerate([("mult_gauss", 0.5), ("ablation", 0.3), ("uni_quant", 4),
                                                        ("mult_gauss", 1.4), ("ablation", 0.9)] * 2):
            baseline.restore()
            baseline.degrade(method, level, 42 + repeat_index)
        baseline.restore()
    assert_bitwise_equal(embedded.model, reference)


def test_baseline_holds_exactly_the_group(embedded):
    targets = resolve_group(embedded.model, "attn_only")
    baseline = Baseline(targets)
    assert len(baseline.saved) == 18
    assert baseline.nbytes == sum(t.tensor.numel() * 4 for t in targets)
    assert all(s.device.type == "cpu" and s.data_ptr() != t.tensor.data_ptr()
               for s, t in zip(baseline.saved, targets, strict=True))


DIGEST_SCRIPT = textwrap.dedent("""
    import hashlib, sys
    sys.path.insert(0, {root!r})
    import torch
    from degrader.baseline import Baseline
    from degrader.groups import resolve_group
    from degrader.models import load_model
    torch.manual_seed(int(sys.argv[1]))  # a different global RNG state in each process must not matter
    loaded = load_model("embedded", dtype="float32", device="cpu")
    baseline = Baseline(resolve_group(loaded.model, "attn_only"))
    baseline.degrade("ablation", 0.3, 42 + 3)
    baseline.degrade("mult_gauss", 0.7, 42 + 3)
    digest = hashlib.sha256()
    for target in baseline.targets:
        digest.update(target.tensor.numpy().tobytes())
    print(digest.hexdigest())
""")


def test_same_seed_repetition_level_gives_the_same_weights_in_two_processes(embedded):
    script = DIGEST_SCRIPT.format(root=str(ROOT))
    digests = [subprocess.run([sys.executable, "-c", script, str(seed)], capture_output=True, text=True,
                              check=True, timeout=300).stdout.strip().splitlines()[-1] for seed in (1, 2)]
    baseline = Baseline(resolve_group(embedded.model, "attn_only"))
    try:
        baseline.degrade("ablation", 0.3, 45)
        baseline.degrade("mult_gauss", 0.7, 45)
        here = hashlib.sha256(b"".join(t.tensor.numpy().tobytes() for t in baseline.targets)).hexdigest()
    finally:
        baseline.restore()
    assert digests[0] == digests[1] == here
