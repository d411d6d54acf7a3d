"""ModelWorker without Ray: the out-of-memory retry and sweep variants, on the real embedded model."""

import pytest
import torch

import actors.worker as worker_module
from actors.plan import Unit
from actors.worker import ModelWorker
from tests.actors.conftest import small_config


@pytest.fixture(scope="module")
def worker():
    loaded = ModelWorker(small_config("max_prompts=6", "max_batch_size=6"), torch.device("cpu"), "test")
    loaded.load()
    return loaded


def test_out_of_memory_shrinks_the_batch_and_keeps_every_prompt(worker, monkeypatch):
    real = worker_module.generate
    calls = []

    def generate(loaded, prompts, *args, **kwargs):  # a GPU that holds at most 2 sequences
        calls.append(len(prompts))
        if len(prompts) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(loaded, prompts, *args, **kwargs)

    monkeypatch.setattr(worker_module, "generate", generate)
    unit = Unit(0.0, 0, tuple(range(6)))
    records = []
    worker.generate_unit(unit, {}, records.extend)
    assert [r["prompt_id"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert calls == [6, 3, 1, 1, 1, 1, 1, 1]  # 6 -> 3 -> 1 per batch; every prompt generated once
    assert worker.sizer.size <= 2 and all(r["batch_size_effective"] <= 2 for r in records)


def test_a_variant_switch_restores_the_old_group_before_snapshotting_the_new(worker):
    reference = {n: p.detach().clone() for n, p in worker.loaded.model.named_parameters()}
    worker.baseline.degrade("mult_gauss", 1.0, 42)  # leave the attn_only group damaged
    worker.prepare(worker.config.replace(param_group_name="mlp_only", name_suffix="other"))
    worker.baseline.restore()
    assert all(torch.equal(p, reference[n]) for n, p in worker.loaded.model.named_parameters())
    assert len(worker.baseline.targets) == 54
    with pytest.raises(ValueError, match="same"):
        worker.prepare(worker.config.replace(dtype="bfloat16"))
