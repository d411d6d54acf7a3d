"""Batched generation with a seeded per-row sampler, and perplexity of a reference text.

Prompts go through the tokenizer's or processor's chat template when it has one (instruction-tuned
models), else raw (the embedded base model), left-padded, with an optional image. Decoding is our
own loop over the model's KV cache rather than `generate`, because sampling must not read the
global RNG: each row draws from `uniform_from_counter(row_seed, step, token)`, so a prompt's output
depends only on its own seed, not on which other prompts share its batch or on the device.
"""

from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from degrader.models import LoadedModel
from degrader.seeding import uniform_from_counter


@dataclass(frozen=True)
class SamplingParams:
    """How tokens are chosen; top_k / top_p of None or 0 / 1.0 disable that filter."""

    max_new_tokens: int = 350
    do_sample: bool = True
    temperature: float = 1.0
    top_k: int | None = 64
    top_p: float | None = 0.95
    ignore_eos: bool = False  # decode max_new_tokens for every row (benchmarks)


@dataclass(frozen=True)
class Generation:
    """One prompt's result: only the new text, never the prompt."""

    text: str
    tokens_in: int
    tokens_out: int
    duration: float
    batch_size: int


def stop_token_ids(loaded: LoadedModel) -> list[int]:
    """`<eos>` and, where the vocabulary has it, Gemma's `<end_of_turn>` (id 106)."""
    tokenizer = loaded.tokenizer
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(loaded.model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    if end_of_turn is not None and end_of_turn != tokenizer.unk_token_id:
        ids.add(end_of_turn)
    return sorted(i for i in ids if i is not None)


def prompt_texts(loaded: LoadedModel, prompts: Sequence[str], with_image: bool) -> list[str]:
    """Prompts through the chat template when there is one, else unchanged."""
    if getattr(loaded.processor, "chat_template", None) is None:
        return list(prompts)
    content = (lambda text: [{"type": "image"}, {"type": "text", "text": text}]) if with_image else (lambda text: text)
    return [loaded.processor.apply_chat_template([{"role": "user", "content": content(text)}],
                                                 tokenize=False, add_generation_prompt=True)
            for text in prompts]


def encode(loaded: LoadedModel, prompts: Sequence[str], image: Any = None) -> dict[str, torch.Tensor]:
    """Left-padded model inputs for `prompts` (and one shared image), on the model's device."""
    texts = prompt_texts(loaded, prompts, image is not None)
    templated = getattr(loaded.processor, "chat_template", None) is not None
    kwargs = {"return_tensors": "pt", "padding": True, "padding_side": "left", "add_special_tokens": not templated}
    if image is not None:
        if not loaded.has_vision:
            raise ValueError(f"{loaded.name} has no vision tower: run image tasks on a multimodal model "
                             "(google/gemma-3-4b-it, random:gemma-3-4b-it) or --set image_enabled=false")
        batch = loaded.processor(text=texts, images=[[image]] * len(texts), **kwargs)
    else:
        batch = loaded.tokenizer(texts, **kwargs)
    return {key: value.to(loaded.device) for key, value in batch.items()}


def choose_tokens(logits: torch.Tensor, params: SamplingParams, row_seeds: torch.Tensor,
                  step: int | torch.Tensor) -> torch.Tensor:
    """Next token per row: argmax, or Gumbel-max sampling after temperature, top-k and top-p."""
    if not params.do_sample:
        return logits.argmax(dim=-1)
    # top-k on the logits as they come (bf16 on a GPU: half the bytes of a float32 copy of the whole
    # vocabulary); temperature > 0 keeps the order, so only the k survivors go to float32
    k = params.top_k if params.top_k else logits.shape[-1]
    values, indices = logits.topk(min(k, logits.shape[-1]), dim=-1)
    values = values.float() / params.temperature
    if params.top_p is not None and params.top_p < 1.0:
        probs = values.softmax(dim=-1)
        outside = (probs.cumsum(dim=-1) - probs) > params.top_p  # keeps at least the top token
        values = values.masked_fill(outside, -math.inf)
    uniform = uniform_from_counter(row_seeds, step, indices)
    gumbel = -torch.log(-torch.log(uniform))
    return indices.gather(-1, (values + gumbel).argmax(dim=-1, keepdim=True)).squeeze(-1)


def cache_argument(model) -> str:
    """transformers >= 5.24 names the KV cache argument `cache`; earlier 5.x `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


NextToken = Callable[[torch.Tensor, int], torch.Tensor]  # (token of step - 1 [B], step) -> token of step [B]


def token_loop(first: torch.Tensor, next_token: NextToken, n_steps: int, stop_ids: Sequence[int], pad_id: int,
               ignore_eos: bool, check_every: int = 1) -> torch.Tensor:
    """Token ids [B, T <= n_steps] from `first` (step 0) on, `pad_id` in a row after its stop token.

    The one decode loop of both paths (`decode`, `StaticDecoder`): they differ only in `next_token`. The loop
    ends early once every row has stopped, tested every `check_every` steps (each test is a host sync); rows
    that stopped are `pad_id` either way, so `check_every` changes only when the loop ends, never a token.
    """
    stops = torch.tensor(list(stop_ids), device=first.device)
    finished = torch.zeros_like(first, dtype=torch.bool)
    steps, token = [], first
    for step in range(n_steps):
        token = token.masked_fill(finished, pad_id)
        steps.append(token)
        if not ignore_eos:
            finished = finished | torch.isin(token, stops)
        if step + 1 == n_steps:
            break
        if (step + 1) % check_every == 0 and not ignore_eos and bool(finished.all()):
            break
        token = next_token(token, step + 1)
    return torch.stack(steps, dim=1)


@torch.inference_mode()
def decode(model, inputs: dict[str, torch.Tensor], params: SamplingParams, row_seeds: torch.Tensor,
           stop_ids: Sequence[int], pad_id: int) -> torch.Tensor:
    """New token ids [B, T] (T <= max_new_tokens), rows padded with `pad_id` after they stop.

    The eager path: a DynamicCache that grows by one token per step (CPU, 4-bit, and the tests' reference).
    """
    from transformers import DynamicCache

    mask = inputs["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = {cache_argument(model): DynamicCache(config=model.config)}
    logits = model(**inputs, position_ids=positions, use_cache=True, logits_to_keep=1, **cache).logits

    def next_token(token: torch.Tensor, step: int) -> torch.Tensor:
        nonlocal mask, positions
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=-1)
        positions = positions[:, -1:] + 1
        logits = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions,
                       use_cache=True, **cache).logits
        return choose_tokens(logits[:, -1], params, row_seeds, step)

    first = choose_tokens(logits[:, -1], params, row_seeds, 0)
    return token_loop(first, next_token, params.max_new_tokens, stop_ids, pad_id, params.ignore_eos)


def tile_rows(inputs: dict[str, torch.Tensor], units: int) -> dict[str, torch.Tensor]:
    """Every input's rows `units` times over, block after block: the rows of a rep-batch, unit by unit."""
    return {key: value.repeat(units, *([1] * (value.dim() - 1))) for key, value in inputs.items()}


def generate(loaded: LoadedModel, prompts: Sequence[str], params: SamplingParams,
             row_seeds: Sequence[int], image: Any = None, decoder=None, units: int = 1,
             steps: int | None = None) -> list[Generation]:
    """Generate for a batch of prompts; row i samples from its own stream `row_seeds[i]`.

    `decoder` (a `static_decode.StaticDecoder` built for `params`) selects the static, compiled path.
    `units` > 1 decodes the prompts once per unit (rep-batching, `rep_batch.UnitStacks` installed):
    rows and results are ordered unit by unit, and `row_seeds` has one seed per row.
    `steps` stops the static path early (a warm-up).
    """
    if steps is not None and decoder is None:
        raise ValueError("steps (a warm-up of the compiled step) needs a static decoder")
    start = time.perf_counter()
    inputs = encode(loaded, prompts, image)
    if units > 1:
        inputs = tile_rows(inputs, units)
    seeds = torch.tensor(list(row_seeds), dtype=torch.int64, device=loaded.device)
    stop_ids = stop_token_ids(loaded)
    pad_id = loaded.tokenizer.pad_token_id
    if decoder is not None:
        new_tokens = decoder.decode(inputs, seeds, stop_ids, pad_id, steps).cpu()
    else:
        new_tokens = decode(loaded.model, inputs, params, seeds, stop_ids, pad_id).cpu()
    duration = time.perf_counter() - start
    tokens_in = inputs["attention_mask"].sum(dim=-1).tolist()
    return [_result(loaded, row, n_in, stop_ids, pad_id, duration, len(prompts), params.ignore_eos)
            for row, n_in in zip(new_tokens, tokens_in, strict=True)]


def _result(loaded: LoadedModel, row: torch.Tensor, tokens_in: int, stop_ids, pad_id: int,
            duration: float, batch_size: int, ignore_eos: bool) -> Generation:
    ids = row.tolist()
    if not ignore_eos:
        ends = [i for i, token in enumerate(ids) if token in stop_ids]
        ids = ids[: ends[0] + 1] if ends else ids
    text = loaded.tokenizer.decode(ids, skip_special_tokens=True)
    return Generation(text, int(tokens_in), len(ids), duration, batch_size)


def perplexity(loaded: LoadedModel, text: str) -> float:
    """exp(mean negative log-likelihood per token) of `text` under the model."""
    return perplexities(loaded, text, 1)[0]


@torch.inference_mode()
def perplexities(loaded: LoadedModel, text: str, units: int) -> list[float]:
    """The perplexity of `text` under each unit's weights (`units` = 1: the model as it is)."""
    ids = loaded.tokenizer(text, return_tensors="pt").input_ids.to(loaded.device)
    logits = loaded.model(input_ids=ids.repeat(units, 1)).logits[:, :-1].float()
    targets = ids[:, 1:].expand(units, -1)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(dim=-1)
    return torch.exp(nll).tolist()
