"""GPU memory watch (pynvml) and the batch-size policy that follows it.

In the spirit of the original pipeline: grow the batch while the GPU is under 40 % full, warn
over 90 %; a CUDA out-of-memory error halves the batch and retries instead of aborting.
"""

from __future__ import annotations

import logging

import torch

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


class BatchSizer:
    """The batch size of the next generate call, adapted to memory use."""

    def __init__(self, max_batch_size: int, monitor: VramMonitor):
        self.max_batch_size = max_batch_size
        self.size = max_batch_size
        self.monitor = monitor

    def after_batch(self) -> float | None:
        """Read memory use after a batch: grow under 40 %, warn over 90 %. Returns the percent."""
        percent = self.monitor.percent()
        if percent is not None and percent > WARN_ABOVE:
            logger.warning("GPU memory at %.1f%% (batch %d)", percent, self.size)
        elif percent is not None and percent < GROW_BELOW and self.size < self.max_batch_size:
            self.size = min(self.max_batch_size, self.size * 2)
            logger.info("GPU memory at %.1f%%: batch size raised to %d", percent, self.size)
        return percent

    def after_oom(self) -> None:
        """Halve the batch after an out-of-memory error (a single prompt that does not fit is the caller's error)."""
        self.size = max(1, self.size // 2)
        logger.warning("CUDA out of memory: batch size halved to %d, retrying", self.size)
        torch.cuda.empty_cache()
