"""scripts/picture_memory.py on the CPU: one real rep-batched batch of picture rows, and the dry run's estimate."""

from __future__ import annotations

import torch

from configs.experiments import get_config
from degrader import memory
from degrader.random_models import random_config
from scripts.picture_memory import main


def test_it_decodes_one_batch_of_picture_rows_and_reports_the_dry_runs_estimate():
    result = main(["--units", "2", "--model", "random:tiny-gemma3", "--max-new-tokens", "4"])
    prompts = len(get_config("cookie_theft_it").prompts)
    assert (result["units"], result["rows"], result["records"]) == (2, 2 * prompts, 2 * prompts)
    assert result["peak_gib"] is None  # no GPU: nothing to measure against
    config = random_config("tiny-gemma3")
    prefill = -(-result["prompt_tokens"] // 16) * 16
    rows = memory.estimate(config, torch.float32, result["rows"], prefill + 4, prefill, image=True)
    copies = 2 * memory.group_bytes(config, torch.float32, "attn_only")
    assert result["estimate_gib"] == round((rows.total + copies) / 2**30, 2)
