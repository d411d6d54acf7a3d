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


def test_datasheet_bandwidth_by_gpu_name():
    assert memory.datasheet_bandwidth("NVIDIA H200") == 4.8e12
    assert (memory.datasheet_bandwidth("NVIDIA H100 80GB HBM3") == memory.datasheet_bandwidth("an unknown GPU")
            == 3.35e12)
