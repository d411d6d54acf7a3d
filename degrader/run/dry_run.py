"""--dry-run: the plan of a launch, with a GPU memory estimate per actor; loads no weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from degrader import memory
from degrader.decoding.static_decode import bucket
from degrader.models import EMBEDDED_SPEC, RANDOM_PREFIX, hf_token, model_name, resolve_dtype
from degrader.random_models import random_config
from degrader.run.keys import record_key
from degrader.run.legacy import ORIGINAL_SCHEMA
from degrader.run.options import LaunchRequest
from degrader.run.plan import missing_units, output_path, total_records, total_units
from degrader.run.preflight import existing_records, offline_config_name
from degrader.seeding import repetition_seed

if TYPE_CHECKING:  # configs builds on degrader: only type checkers may read it from here (tests/test_layers.py)
    from configs.experiments import ExperimentConfig

TEMPLATE_TOKENS = 16  # chat-template tokens around a prompt


def model_config(spec: str):
    """The architecture config of `spec` without weights (hub configs need network or a cache)."""
    if spec.startswith(RANDOM_PREFIX):
        return random_config(spec[len(RANDOM_PREFIX):])
    if spec == EMBEDDED_SPEC:
        return random_config("gemma-3-270m")
    offline = offline_config_name(spec)  # the default model's plan works without the Hub
    if offline:
        return random_config(offline)
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(spec, token=hf_token())


def sequence_length(config: ExperimentConfig, architecture) -> int:
    """Longest prompt (about 4 characters a token) + template + image tokens + new tokens."""
    longest = max(len(p.text) for p in config.prompts) // 4 + TEMPLATE_TOKENS
    image = getattr(architecture, "mm_tokens_per_image", 0) if config.image_enabled else 0
    return longest + image + config.max_new_tokens


def prefill_tokens(config: ExperimentConfig, sequence: int) -> int:
    """The prompt part of `sequence`, rounded up to the length bucket as the static decoder rounds it."""
    return bucket(sequence - config.max_new_tokens)


def print_plans(configs: list[ExperimentConfig], request: LaunchRequest) -> int:
    """The plan of each config (a sweep's variants); a model's architecture is read once for all of them (for a
    Hub model offline, that is one probe of the Hub, not one per variant). Returns exit code 0."""
    architectures = {spec: model_config(spec) for spec in dict.fromkeys(c.model_name for c in configs)}
    return max(print_plan(config, request, architectures[config.model_name]) for config in configs)


def print_plan(config: ExperimentConfig, request: LaunchRequest, architecture=None) -> int:
    """Print units, prompts, output file and memory per actor; return exit code 0. `architecture`: the model's
    config when the caller has read it (None: read here)."""
    path = output_path(config, request.results_dir)
    # a file that is not a results file is preflight's one-line error, also with --force (which skips that check)
    existing = {record_key(r): r for r in existing_records(path)} if path.exists() else {}
    units = missing_units(config, set(existing))
    device = torch.device("cuda" if request.gpus else "cpu")
    dtype = resolve_dtype(config.dtype, device)
    architecture = architecture if architecture is not None else model_config(config.model_name)
    batch = min(config.max_batch_size, len(config.prompts))
    sequence = sequence_length(config, architecture)
    estimate = memory.estimate(architecture, dtype, batch, sequence, prefill=prefill_tokens(config, sequence),
                               image=config.image_enabled)
    lines = [
        f"experiment      {config.config_name} ({config.prompt_group}, {len(config.prompts)} prompts "
        f"from {config.prompts_file or 'the built-in set'})",
        f"model           {model_name(config.model_name)} ({type(architecture).__name__}, {str(dtype)[6:]})",
        f"lesion          {config.degradation_method} on {config.param_group_name}, levels {config.levels}",
        f"repetitions     {config.n_rep} (seeds {repetition_seed(config.seed, 0)}.."
        f"{repetition_seed(config.seed, config.n_rep - 1)})",
        f"records         {total_records(config)} in all, {sum(len(u.prompt_ids) for u in units)} missing "
        f"in {len(units)} units",
        f"output          {path}",
        _existing_line(config, list(existing.values()), sum(len(u.prompt_ids) for u in units)),
        f"actors          {request.n_actors} ({'GPU' if request.gpus else 'CPU'})",
        f"memory / actor  {estimate.total / 2**30:.2f} GiB at batch {batch}: weights "
        f"{estimate.weights / 2**30:.2f}, KV cache {estimate.kv_cache / 2**30:.2f}, logits "
        f"{estimate.logits / 2**30:.2f}, activations {estimate.activations / 2**30:.2f}",
    ]
    lines.append(_rep_line(config, architecture, dtype, batch, estimate) if request.gpus else
                 "rep-batching    off on the CPU unless --set units_per_batch=N")
    print("\n".join(lines))
    return 0


def _existing_line(config: ExperimentConfig, records: list[dict], n_missing: int) -> str:
    """What the output already holds: how many records, how many of the original pipeline, how many count here."""
    original = sum(r.get("record_schema") == ORIGINAL_SCHEMA for r in records)
    counted = total_records(config) - n_missing
    return (f"in the file     {len(records)} records ({original} of the original pipeline); {counted} are of this "
            f"plan, {len(records) - counted} of other prompts, levels or settings (kept, not counted)")


def _rep_line(config: ExperimentConfig, architecture, dtype, batch: int, estimate) -> str:
    """What rep-batching costs per unit in a batch and how many units fit on 80 and 141 GiB GPUs."""
    n_units = total_units(config)
    if config.units_per_batch == 1 or n_units == 1:
        return "rep-batching    off (one unit per batch)"
    copies = memory.group_bytes(architecture, dtype, config.param_group_name)
    sequence = sequence_length(config, architecture)
    free = {gib: gib * 2**30 - estimate.weights for gib in (80, 141)}
    units = {gib: memory.planned_units(n_units, config.units_per_batch,
                                      memory.max_units(architecture, dtype, bytes_free, sequence, batch, copies,
                                                       prefill=prefill_tokens(config, sequence),
                                                       image=config.image_enabled))
             for gib, bytes_free in free.items()}
    return (f"rep-batching    each unit in a batch adds {copies / 2**30:.2f} GiB of copies + "
            f"{(estimate.total - estimate.weights) / 2**30:.2f} GiB for its {batch} prompts; "
            + ", ".join(f"at most {n} per batch on {gib} GiB" for gib, n in units.items()))
