"""The process settings under which a GPU decode gives the same numbers in every process, bitwise.

Without them two processes that ran the same units with the same seeds and batch shapes gave different texts for
most records on an H200 (docs/performance.md, "Records across launches"): each process, compiling the decode step
or loading it precompiled, took one of a few numerical variants, while runs within one process always repeated.
Inductor's deterministic mode alone, with or without a fixed cuBLAS workspace, did not make them repeat;
`torch.use_deterministic_algorithms` with NVIDIA's reproducible cuBLAS workspace did (seven processes on three
machines, compiled or loaded: the same records), for about 9 % more decode time. It also turns on inductor's
deterministic mode (no on-device benchmarking that may change numerics).

`warn_only`: an op with no deterministic implementation (none on the measured paths) warns rather than stopping a
run. Filling new tensors with NaN, a debugging aid that deterministic mode turns on, is turned off: it costs time
and the decode reads no uninitialized memory (the measured records were the same with and without it).
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)
CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
# NVIDIA's cuBLAS workspace settings under which its results repeat bitwise; the first is the default here
REPEATABLE_CUBLAS = (":4096:8", ":16:8")


def make_repeatable() -> None:
    """Deterministic algorithms (warn-only, no NaN fill) and a reproducible cuBLAS workspace, for this process.

    Call it before the process's first GPU matrix product: cuBLAS reads its workspace setting once. A value of
    CUBLAS_WORKSPACE_CONFIG set by the user is kept; one outside REPEATABLE_CUBLAS gets a warning."""
    configured = os.environ.setdefault(CUBLAS_ENV, REPEATABLE_CUBLAS[0])
    if configured not in REPEATABLE_CUBLAS:
        logger.warning("%s=%s is not one of cuBLAS's reproducible settings (%s): GPU records may not repeat "
                       "across processes; unset it to use %s", CUBLAS_ENV, configured, ", ".join(REPEATABLE_CUBLAS),
                       REPEATABLE_CUBLAS[0])
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
