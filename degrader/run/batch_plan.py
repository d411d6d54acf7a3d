"""How much one batch holds: prompts per unit block and units per batch, sized from memory and kept in bounds by it.

In the spirit of the original pipeline: the prompts per batch grow back while the GPU is under 40 % full,
a warning is logged over 90 %, and a CUDA out-of-memory error shrinks the batch and retries instead of
aborting. One policy for every out-of-memory error: halve the prompts per batch down to 1, then the
units per batch down to 1, then give up.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from PIL import Image

from degrader import memory
from degrader.decoding.generation import encode
from degrader.decoding.static_decode import bucket
from degrader.models import LoadedModel

if TYPE_CHECKING:  # configs builds on degrader: only type checkers may read it from here (tests/test_layers.py)
    from configs.experiments import ExperimentConfig

logger = logging.getLogger(__name__)
GROW_BELOW, WARN_ABOVE = 40.0, 90.0


class VramMonitor:
    """Used fraction of the memory of the GPU behind `device`, or None on the CPU."""

    def __init__(self, device: torch.device):
        self.handle = None
        if device.type == "cuda":
            import pynvml

            pynvml.nvmlInit()
            uuid = str(torch.cuda.get_device_properties(device).uuid)
            self.handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")

    def percent(self) -> float | None:
        """Percent of the GPU's memory in use (all processes), None without a GPU."""
        if self.handle is None:
            return None
        import pynvml

        info = pynvml.nvmlDeviceGetMemoryInfo(self.handle)
        return round(100.0 * info.used / info.total, 1)


@dataclass(frozen=True)
class PromptSet:
    """A variant's prompts as the decoders see them: the picture shown with each (or None), the longest in tokens."""

    image: Image.Image | None
    length: int

    @classmethod
    def of(cls, loaded: LoadedModel, config: ExperimentConfig) -> PromptSet:
        """Open the config's picture and measure its prompts, left-padded together, in tokens."""
        image = Image.open(config.image_path).convert("RGB") if config.image_enabled else None
        return cls(image, encode(loaded, [p.text for p in config.prompts], image)["input_ids"].shape[1])


class Halving(enum.Enum):
    """What an out-of-memory retry makes smaller."""

    PROMPTS = "prompts per batch"
    UNITS = "units per batch"


class BatchPlan:
    """Prompts per unit block and units per batch: sized when a variant is prepared, adapted batch by batch."""

    def __init__(self, device: torch.device):
        self.device = device
        self.monitor: VramMonitor | None = None  # opened when the first variant is sized (pynvml on a GPU)
        self.max_prompts = 1  # prompts per unit block at most: the config's cap and, on a GPU, its free memory
        self.prompts = 1  # prompts per unit block of the next batch: halved by out of memory, grown back below 40 %
        self.max_units = 1  # units per batch at most: the config's request and what fits in memory
        self.fits: int | None = None  # units whose copies and rows fit in the memory free when the group was taken
        # (None: not measured for the group held, e.g. its last variant asked for one unit per batch)

    def size_prompts(self, model, config: ExperimentConfig, prompt_length: int, image: bool = False) -> None:
        """The most prompts per batch that fit: the config's cap, and on a GPU its free memory."""
        self.monitor = self.monitor or VramMonitor(self.device)
        cap = min(config.max_batch_size, len(config.prompts))
        if self.device.type == "cuda":
            sequence = bucket(prompt_length) + config.max_new_tokens
            cap = max(1, min(cap, memory.max_batch(model.config, model.dtype, self._free(), sequence,
                                                   prefill=bucket(prompt_length), image=image)))
        self.max_prompts = self.prompts = cap

    def size_units(self, model, requested: int, n_units: int, sequence: int, unit_bytes: int,
                   unsupported: str | None, same_group: bool = False, prefill: int | None = None,
                   image: bool = False) -> None:
        """Units per batch at most: `requested` (0 = auto), `n_units`, and what fits in memory.

        `sequence`: prompt and new tokens of one row (`prefill`: the prompt's; `image`: with a picture);
        `unit_bytes`: what each unit's copies of the group take; `unsupported`: why the group cannot be
        rep-batched (None when it can); `same_group`: the last variant's group, whose stacks and decoders hold
        memory that this variant uses again: what fit then fits now."""
        if requested == 1 or n_units == 1 or unsupported is not None:
            if unsupported is not None and requested != 1:
                logger.info("one unit per batch: %s", unsupported)
            self.max_units, self.fits = 1, None  # nothing measured: a later variant of the group measures
        elif self.device.type != "cuda":  # no memory to share out on the CPU; explicit requests only
            self.max_units = memory.planned_units(n_units, requested, fits=requested or 1)
        else:
            if not same_group or self.fits is None:
                self.fits = memory.max_units(model.config, model.dtype, self._free(), sequence, self.prompts,
                                             unit_bytes, prefill=prefill, image=image)
            self.max_units = memory.planned_units(n_units, requested, self.fits)

    def _free(self) -> int:
        return torch.cuda.mem_get_info(self.device)[0]

    def after_batch(self) -> float | None:
        """Read memory use after a batch: grow the prompts per batch under 40 %, warn over 90 %. Returns the percent."""
        percent = self.monitor.percent() if self.monitor is not None else None
        if percent is not None and percent > WARN_ABOVE:
            logger.warning("GPU memory at %.1f%% (%d prompts per batch)", percent, self.prompts)
        elif percent is not None and percent < GROW_BELOW and self.prompts < self.max_prompts:
            self.prompts = min(self.max_prompts, self.prompts * 2)
            logger.info("GPU memory at %.1f%%: prompts per batch raised to %d", percent, self.prompts)
        return percent

    def halving(self, in_prompts: bool, units: int) -> Halving | None:
        """What to halve after out of memory, or None when nothing is left to halve (then the error stands).

        `in_prompts`: the error came while decoding a prompt batch (fewer prompts may fit; the group's
        copies and the perplexity pass do not depend on them); `units`: the units per batch that failed."""
        if in_prompts and self.prompts > 1:
            return Halving.PROMPTS
        return Halving.UNITS if units > 1 else None

    def halve(self, halving: Halving, units: int) -> None:
        """Apply `halving` (from `halving()`) after the failed attempt's tensors are freed."""
        if halving is Halving.PROMPTS:
            logger.warning("CUDA out of memory: prompts per batch halved to %d, retrying", self.prompts // 2)
            self.prompts //= 2
        else:
            logger.warning("CUDA out of memory at one prompt per unit: units per batch %d instead of %d",
                           units // 2, units)
            self.fits = self.max_units = units // 2  # also for the next variant of the group
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
