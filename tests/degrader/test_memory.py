"""Rep-batching memory arithmetic: how many repetitions fit and how they are spread over batches."""

import torch

from degrader import memory
from degrader.random_models import random_config


def test_repetitions_are_spread_over_as_few_equal_batches_as_fit():
    assert [memory.spread_reps(10, most) for most in (1, 3, 4, 5, 6, 9, 10, 40)] == [1, 3, 4, 5, 5, 5, 10, 10]
    assert memory.spread_reps(10, 0) == 1 and memory.spread_reps(3, 2) == 2


def test_each_repetition_costs_its_copies_and_its_rows():
    config = random_config("gemma-3-4b-it")
    per_rows = memory.estimate(config, torch.bfloat16, 38, 400)
    copies = memory.group_bytes(config, torch.bfloat16, "attn_only")
    assert copies == 34 * 2560 * 1024 * 2  # the 34 language-model value projections
    per_rep = copies + per_rows.total - per_rows.weights
    assert memory.max_reps(config, torch.bfloat16, 3 * per_rep, 400, 38, copies) == 3
    assert memory.max_reps(config, torch.bfloat16, 3 * per_rep - 1, 400, 38, copies) == 2
