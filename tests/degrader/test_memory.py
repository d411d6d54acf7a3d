"""Rep-batching memory arithmetic: how many units fit in a batch, and the cap a config allows."""

import torch

from degrader import memory
from degrader.random_models import random_config


def test_units_per_batch_are_capped_by_the_request_what_fits_and_the_units():
    assert memory.planned_units(50, 0, 20) == 20 and memory.planned_units(50, 8, 20) == 8
    assert memory.planned_units(6, 0, 20) == 6 and memory.planned_units(50, 0, 0) == 1


def test_each_repetition_costs_its_copies_and_its_rows():
    config = random_config("gemma-3-4b-it")
    per_rows = memory.estimate(config, torch.bfloat16, 38, 400)
    copies = memory.group_bytes(config, torch.bfloat16, "attn_only")
    assert copies == 34 * 2560 * 1024 * 2  # the 34 language-model value projections
    per_rep = copies + per_rows.total - per_rows.weights
    assert memory.max_units(config, torch.bfloat16, 3 * per_rep, 400, 38, copies, headroom=1) == 3
    assert memory.max_units(config, torch.bfloat16, 3 * per_rep - 1, 400, 38, copies, headroom=1) == 2


def test_a_rep_batched_batch_costs_the_weights_all_its_rows_and_a_copy_of_the_group_per_unit():
    config = random_config("gemma-3-4b-it")  # 34 layers, 4 kv heads of 256, hidden 2560, MLP 10240, vocab 262208
    weights = memory.count_parameters(config) * 2
    copy = 34 * 2560 * 1024 * 2  # attn_only: 178,257,920
    # 3 units of 2 rows, 100 tokens, a prefill of 20, bfloat16: 6 rows
    # KV cache 2 x 34 x 4 x 256 x 2 = 139,264 per token x 6 x 100 = 83,558,400; logits 4 x 6 x 262,208 x 2 =
    # 12,585,984; activations 4 x 6 x 20 x 10,240 x 2 = 9,830,400; copies 3 x 178,257,920 = 534,773,760
    assert memory.batch_bytes(config, torch.bfloat16, 3, 100, 2, copy, prefill=20) == weights + 640_748_544
    # 1 unit of 2 rows degrades the weights in place, no copy: 27,852,800 + 4,195,328 + 3,276,800
    assert memory.batch_bytes(config, torch.bfloat16, 1, 100, 2, copy, prefill=20) == weights + 35_324_928


def test_datasheet_bandwidth_by_gpu_name():
    assert memory.datasheet_bandwidth("NVIDIA H200") == 4.8e12
    assert (memory.datasheet_bandwidth("NVIDIA H100 80GB HBM3") == memory.datasheet_bandwidth("an unknown GPU")
            == 3.35e12)


# Peaks of `scripts/benchmark.py --group attn_only --levels 0.3 --reps N --skip-naive [--skip-per-unit]` on one
# H100 80GB HBM3 (docs/performance.md): 38 prompts of 26 tokens (bucket 32) + 350 new tokens, N units per
# batch; the 1-unit peak is that of the rep-batched path run after the per-unit path (no compile in it).
MEASURED_PEAK_GIB = {1: 10.09, 10: 30.25, 25: 63.03}


def test_activations_peak_in_the_prefill_not_over_the_whole_sequence():
    config = random_config("gemma-3-4b-it")  # hidden 2560, intermediate 10240
    assert memory.estimate(config, torch.bfloat16, 38, 382, prefill=32).activations == 4 * 38 * 32 * 10240 * 2
    assert memory.estimate(config, torch.bfloat16, 38, 382).activations == 4 * 38 * 382 * 10240 * 2  # upper bound
    with_prefill = memory.max_units(config, torch.bfloat16, 56 * 2**30, 382, 38, 0, headroom=1, prefill=32)
    assert with_prefill > memory.max_units(config, torch.bfloat16, 56 * 2**30, 382, 38, 0, headroom=1)


def test_the_estimate_is_within_a_few_percent_of_the_peaks_measured_on_an_h100():
    config = random_config("gemma-3-4b-it")
    copies = memory.group_bytes(config, torch.bfloat16, "attn_only")
    for units, peak in MEASURED_PEAK_GIB.items():
        estimate = memory.batch_bytes(config, torch.bfloat16, units, 32 + 350, 38, copies, prefill=32) / 2**30
        assert abs(estimate - peak) / peak < 0.02, (units, estimate, peak)


def test_a_picture_in_each_row_costs_the_vision_towers_activations():
    config = random_config("gemma-3-4b-it")  # SigLIP: 896 px in 14 px patches (4,096), hidden 1,152, MLP 4,304
    assert (config.vision_config.image_size, config.vision_config.patch_size) == (896, 14)
    with_picture = memory.estimate(config, torch.bfloat16, 20, 600, prefill=300, image=True)
    # per patch: the MLP's output and its GELU, the residual stream and its normed copy; larger than the text's
    assert with_picture.activations == 2 * 20 * 4096 * (4304 + 1152) * 2
    assert memory.estimate(config, torch.bfloat16, 20, 600, prefill=300).activations == 4 * 20 * 300 * 10240 * 2
    text_only = random_config("gemma-3-270m")  # no vision tower: the flag changes nothing
    assert memory.estimate(text_only, torch.bfloat16, 4, 64, 16, image=True) == \
        memory.estimate(text_only, torch.bfloat16, 4, 64, 16)


# Peaks of `cookie_theft_it` rows (20 prompts of 283 tokens with the picture, bucket 288, + 64 new tokens), attn_only
# rep-batched, N units per batch, one H100 80GB HBM3 (docs/performance.md): one batch through ModelWorker.
MEASURED_PICTURE_PEAK_GIB = {6: 23.47, 14: 44.02}


def test_the_estimate_of_picture_rows_is_at_most_10_percent_over_the_peaks_measured_on_an_h100():
    config = random_config("gemma-3-4b-it")
    copies = memory.group_bytes(config, torch.bfloat16, "attn_only")
    for units, peak in MEASURED_PICTURE_PEAK_GIB.items():
        estimate = memory.batch_bytes(config, torch.bfloat16, units, 288 + 64, 20, copies, prefill=288,
                                      image=True) / 2**30
        assert 1 <= estimate / peak < 1.1, (units, estimate, peak)  # above: a batch that fits the estimate fits
