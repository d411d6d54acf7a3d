"""The process settings under which a GPU decode gives the same numbers in every process, bitwise.

Without them, processes that ran the same units with the same seeds and batch shapes gave different texts for
most records on H200s (docs/performance.md, "Records across launches: what makes them repeat"): each process took
one of several numerical variants when it compiled or loaded its decode step (whether compiled or loaded did
not decide it), while runs within one process always repeated. Inductor's deterministic mode
(TORCHINDUCTOR_DETERMINISTIC) did not make them repeat; `torch.use_deterministic_algorithms` did (seven processes
in three device calls, compiled or loaded: the same records), for about 9 % more decode time at 15 units per
batch. Which of the changes it makes mattered was not isolated: deterministic implementations of some aten ops,
cuDNN's deterministic algorithms, and in inductor a fallback to aten for index_put and scatter-reduce.

`warn_only`: an op with no deterministic implementation warns (the actors log it) rather than stopping a run;
none did on the measured paths (text prompts and `cookie_theft_it`'s picture, rep-batched and per unit).
Filling new tensors with NaN, a debugging aid that deterministic mode turns on, is turned off: it costs time, and
the records were the same with and without it.

CUBLAS_WORKSPACE_CONFIG: NVIDIA documents cuBLAS as bitwise reproducible with a fixed workspace (one of
REPEATABLE_CUBLAS). On H100 and H200 PyTorch's default workspace has the size of the first already, so there it
changes nothing (measured: not the fix); it is set on every GPU and matters where the default differs.
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)
CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
# the cuBLAS workspace settings NVIDIA documents as reproducible; the first is the default here
REPEATABLE_CUBLAS = (":4096:8", ":16:8")


def make_repeatable() -> None:
    """Deterministic algorithms (warn-only, no NaN fill) and a fixed cuBLAS workspace, for the whole process.

    Call it before the process's first GPU matrix product: cuBLAS reads its workspace setting once. A value of
    CUBLAS_WORKSPACE_CONFIG set by the user is kept; one outside REPEATABLE_CUBLAS gets a warning."""
    configured = os.environ.setdefault(CUBLAS_ENV, REPEATABLE_CUBLAS[0])
    if configured not in REPEATABLE_CUBLAS:
        logger.warning("%s=%s is not one of the cuBLAS workspaces NVIDIA documents as reproducible (%s); records "
                       "repeated on H200s with %s; unset it to use that", CUBLAS_ENV, configured,
                       ", ".join(REPEATABLE_CUBLAS), REPEATABLE_CUBLAS[0])
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
