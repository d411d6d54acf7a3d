"""The compiled decode step saved whole, so that a later process loads it without tracing (torch's AOT precompile).

With a warm on-disk compile cache, inductor and AOT autograd read their entries back, but dynamo still traces
the step's Python again (8.3 s on an H100 for the 34-layer step) and builds its guards (1.9 s): most of a warm
warm-up (docs/performance.md, "Where a warm-up goes"). `torch.compile(...).aot_compile` saves what dynamo made
as well (the step's bytecode and the compiled graph), and `torch.compiler.load_compiled_function` loads it.

A loaded step checks no guards: dynamo can save only some of them (not those on the fused projections'
hooks, their closures, or any function's identity), so the step is compiled without any, and the file's
name is the guard: a hash over everything the trace reads or specializes on (`step_fingerprint`): the
degrader's source, the model's modules (classes, simple attributes, hooks and their closures, every tensor's
shape, stride, dtype, device and flags, and which tensors share storage), the KV cache, the step's arguments,
the attention functions and the process-wide settings a trace reads (grad mode, matmul precision, SDPA's
backends...). A change in any of them is another file and compiles anew. The folder holds the files of one
compile-cache key (torch, transformers, Triton, CUDA, GPU, Python, model: compile_cache.py); transformers'
source counts by its version only.

Anything that fails here falls back, with a warning: a file that does not load, or fails on its first call,
is compiled again and replaced; a step that cannot be precompiled (a graph break), or whose fingerprint
cannot be taken, compiles as before, with the plain `torch.compile`, unsaved. A step is saved once it has run.
Out of memory is raised, for the worker to halve its batch.

Processes that share the folder (the actors of one host) compile each step once: the first to need a missing
step claims it (an exclusive lock on `<fingerprint>.claim`, which the kernel drops when the process ends) and
compiles it; the others wait for its file and load it. A process that waited for a holder that saved nothing,
or waited CLAIM_WAIT_S, compiles the step itself. On NFS, flock becomes a POSIX lock: processes of one host
still exclude each other, and a lost lock costs at worst a second compile of the same step.
"""

from __future__ import annotations

import enum
import fcntl
import functools
import gc
import hashlib
import json
import logging
import os
import socket
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from degrader.files import atomic_write_bytes

logger = logging.getLogger(__name__)
DESCRIBE_DEPTH = 4  # how deep `describe` follows objects, lists and closures (a hook -> its product -> a tensor)
SIMPLE = (type(None), bool, int, float, str)
HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks")  # described as functions, without their handle ids
UNTRACED = {"_original_object_hash", "generation_config"}  # differ between processes; the step never reads them
CLAIM_WAIT_S = 1800.0  # the longest wait for another process's compile (40-75 s on a GPU host), then compile anyway
CLAIM_POLL_S = 0.25


class PrecompiledStep:
    """`torch.compile(step, mode=mode, dynamic=False)`, loaded from `folder` when a file for the same step exists.

    The step is built on its first call, from that call's arguments; every later call runs it. Having no guards,
    it does not notice a change made to the model after that call (a paused fusion, another attention): a
    decoder must not outlive such a change (DecoderCache evicts decoders whenever the stacks change)."""

    def __init__(self, step: Callable, mode: str, folder: Path):
        self.step, self.mode, self.folder = step, mode, Path(folder)
        self.compiled: Callable | None = None
        self.loaded = False  # whether the step came from a file (no tracing, no compile)

    def __call__(self, *args):
        if self.compiled is not None:
            return self.compiled(*args)
        path = self._path(args)
        claim = claim_step(path) if path is not None else None  # waits while another process compiles this step
        try:
            return self._first_call(path, args)
        finally:
            if claim is not None:
                release_claim(claim)

    def _first_call(self, path: Path | None, args: tuple):
        """Load the step from `path` (or compile it, and save it once it has run) and run it."""
        self.compiled = self._load(path) if path is not None else None
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except torch.OutOfMemoryError:
                raise
            except Exception as error:  # noqa: BLE001 (a file that loads but does not run: compile it anew)
                logger.warning("the precompiled decode step %s failed on its first call (%s: %s); compiling it "
                               "again", path.name, type(error).__name__, error)
                self.loaded = False
        self.compiled, precompiled = self._compile(args, path is not None)
        result = self.compiled(*args)
        if precompiled:  # saved once it has run
            save_step(self.compiled, path)
        return result

    def _path(self, args: tuple) -> Path | None:
        """The step's file, or None (with a warning) when its fingerprint cannot be taken: compiled, not saved."""
        try:
            path = self.folder / f"{step_fingerprint(args, self.mode)}.step"
            path.is_file()  # a folder that cannot be read fails here, not later
            return path
        except Exception as error:  # noqa: BLE001 (an object the fingerprint cannot read, an unreadable folder)
            logger.warning("no fingerprint for the decode step (%s: %s); it compiles without being saved",
                           type(error).__name__, error)
            return None

    def _load(self, path: Path) -> Callable | None:
        if not path.is_file():
            return None
        started = time.perf_counter()
        compiled = load_step(path, self.mode)
        if compiled is not None:
            self.loaded = True
            logger.info("decode step loaded from %s in %.1fs (no tracing)", path.name, time.perf_counter() - started)
        return compiled

    def _compile(self, args: tuple, precompile: bool) -> tuple[Callable, bool]:
        """The step traced and compiled for saving (True), or the plain torch.compile (False) where that fails or
        `precompile` is False."""
        if precompile:
            try:
                return self._precompile(args), True
            except torch.OutOfMemoryError:  # the worker halves its batch and tries again
                raise
            except Exception as error:  # noqa: BLE001 (dynamo raises many kinds; all mean "compile as before")
                logger.warning("the decode step could not be precompiled (%s: %s); it compiles without being saved",
                               type(error).__name__, str(error).splitlines()[0] if str(error) else "")
        return torch.compile(self.step, mode=self.mode, dynamic=False), False

    def _precompile(self, args: tuple) -> Callable:
        # the options of `mode` (a mode and options cannot both be given), and no guards: the fingerprint is the guard
        options = {**mode_options(self.mode), "guard_filter_fn": torch.compiler.skip_all_guards_unsafe}
        with torch._dynamo.config.patch(enable_aot_compile=True):  # off by default in torch 2.11
            compiled = torch.compile(self.step, fullgraph=True, dynamic=False, options=options)
        try:
            return _unguarded(compiled.aot_compile((args, {})))
        finally:
            # the trace leaves reference cycles that reach the decoder: collected now (also after a failed trace),
            # an evicted decoder's KV cache goes by reference counting, before free memory sizes the next batches
            gc.collect()


@dataclass(frozen=True)
class StepClaim:
    """This process compiles the step: it holds the lock on the step's claim file (the kernel drops the lock when
    the process ends, however it ends)."""

    path: Path
    handle: int


def claim_step(path: Path, wait_s: float = CLAIM_WAIT_S) -> StepClaim | None:
    """Wait while another process compiles the step saved at `path` (it holds `<step>.claim`'s lock); returns the
    claim this process now holds (it compiles the step, then `release_claim`), or None: the step's file is there
    (load it), the process waited for saved nothing (a step that cannot be saved: each process compiles it, at
    once rather than one after another), `wait_s` has passed, or no claim can be made (an unwritable folder)."""
    claim_path, deadline, holder = path.with_suffix(".claim"), time.monotonic() + wait_s, None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while not path.is_file():
            claim = _try_lock(claim_path)
            if claim is not None and holder is None:  # nobody held it
                return _held(claim, path)
            if claim is not None:  # released by the process waited for
                release_claim(claim)
                if not path.is_file():
                    logger.info("%s compiled decode step %s but saved nothing; compiling it here", holder, path.name)
                return None
            if holder is None:
                holder = _holder(claim_path)
                logger.info("waiting for %s, which compiles decode step %s", holder, path.name)
            if time.monotonic() > deadline:
                logger.warning("waited %.1fs for %s to compile decode step %s; compiling it here", wait_s, holder,
                               path.name)
                return None
            time.sleep(CLAIM_POLL_S)
    except OSError as error:
        logger.warning("cannot claim decode step %s (%s: %s); compiling it unclaimed", path.name,
                       type(error).__name__, error)
    return None


def _try_lock(claim_path: Path) -> StepClaim | None:
    """The claim, if no other process holds its lock (None otherwise)."""
    handle = os.open(claim_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # a holder removes its claim before it unlocks it: a lock on a file no longer at `claim_path` is no claim
        if os.fstat(handle).st_ino == os.stat(claim_path).st_ino:
            return StepClaim(claim_path, handle)
    except (BlockingIOError, FileNotFoundError):
        pass
    except BaseException:
        os.close(handle)
        raise
    os.close(handle)
    return None


def _held(claim: StepClaim, path: Path) -> StepClaim | None:
    """A claim just locked: its holder written in (for the others' log), or released if the step was saved just
    before (by the previous holder)."""
    if path.is_file():
        release_claim(claim)
        return None
    try:
        os.ftruncate(claim.handle, 0)
        os.pwrite(claim.handle, json.dumps({"host": socket.gethostname(), "pid": os.getpid()}).encode(), 0)
    except OSError:  # a full disk: the claim holds without its holder's name (only the others' log reads it)
        pass
    return claim


def release_claim(claim: StepClaim) -> None:
    """Remove the claim file, then unlock it (in that order: no other process can lock a file about to go)."""
    try:
        claim.path.unlink()
    except OSError:  # removed already; the lock still goes with the handle
        pass
    os.close(claim.handle)


def _holder(claim_path: Path) -> str:
    """'pid P on HOST', as the claim's holder wrote it, or 'another process'."""
    try:
        holder = json.loads(claim_path.read_text())
        return f"pid {holder['pid']} on {holder['host']}"
    except (OSError, ValueError, KeyError, TypeError):  # not written yet, or gone
        return "another process"


def load_step(path: Path, mode: str) -> Callable | None:
    """The step saved at `path` for compile `mode`, or None (with a warning) when it does not load: it is then
    compiled and saved again."""
    try:
        # torch wraps the loaded graph with the options in force (CUDA graphs for "reduce-overhead"), not the saved
        # ones: without them the step ran 18 % slower on an H200 (docs/performance.md)
        with open(path, "rb") as handle, torch._inductor.config.patch(mode_options(mode)):
            return _unguarded(torch.compiler.load_compiled_function(handle))
    except Exception as error:  # noqa: BLE001 (a truncated or foreign file fails in many ways)
        logger.warning("could not load the precompiled decode step %s (%s: %s); compiling it again", path,
                       type(error).__name__, error)
        return None


def save_step(compiled, path: Path) -> None:
    """Write a precompiled step atomically (a crash leaves the old file or none); a failure only warns."""
    try:
        data = type(compiled).serialize(compiled).serialized_data  # what save_compiled_function writes
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
    except Exception as error:  # noqa: BLE001 (a full disk must not stop the run: the step is compiled already)
        logger.warning("could not save the precompiled decode step to %s (%s: %s)", path, type(error).__name__, error)


def mode_options(mode: str) -> dict[str, Any]:
    """Inductor's options for a torch.compile `mode` ({"triton.cudagraphs": True} for "reduce-overhead")."""
    return dict(torch._inductor.list_mode_options(mode, dynamic=False))


def _unguarded(compiled):
    """A precompiled step that checks no guards at each call (it has none: skip_all_guards_unsafe)."""
    compiled.disable_guard_check()
    return compiled


def step_fingerprint(args: tuple, mode: str) -> str:
    """A hash over everything a trace of `StaticDecoder._step` with `args` (the decoder first) reads."""
    decoder, *tensors = args
    model, describer = decoder.model, Describer()
    parts = {
        "source": source_digest(),
        "mode": mode,
        "settings": global_settings(),
        "arguments": [describer.describe(value) for value in tensors],
        "decoder": {name: describer.describe(value) for name, value in vars(decoder).items()
                    if name not in ("model", "_step_impl", "decoded")},
        "attention": _attention_functions(model, describer),
        "modules": [(name, _class_name(module), describer.describe_module(module))
                    for name, module in model.named_modules()],
    }
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def global_settings() -> list:
    """Process-wide settings a trace reads: grad and inference mode, defaults, determinism (deterministic
    algorithms, warn-only, the NaN fill, inductor's deterministic mode), matmul precision, reduced-precision
    reductions, SDPA's backends, autocast."""
    cuda = torch.backends.cuda
    return [torch.is_grad_enabled(), torch.is_inference_mode_enabled(), str(torch.get_default_dtype()),
            str(torch.get_default_device()), torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(), torch.utils.deterministic.fill_uninitialized_memory,
            torch._inductor.config.deterministic, torch.get_float32_matmul_precision(),
            cuda.matmul.allow_fp16_reduced_precision_reduction, cuda.matmul.allow_bf16_reduced_precision_reduction,
            cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled(), cuda.math_sdp_enabled(),
            cuda.cudnn_sdp_enabled(), torch.is_autocast_enabled("cuda"), torch.is_autocast_enabled("cpu")]


class Describer:
    """What a trace can specialize on in a value: tensors' metadata (with which of them share storage), simple
    values, functions with their closures, and the same inside objects, lists and dicts."""

    def __init__(self):
        self.storages: dict[int, int] = {}  # storage address -> its number by first appearance (aliasing)

    def describe(self, value: Any, depth: int = DESCRIBE_DEPTH) -> Any:
        if isinstance(value, torch.Tensor):
            return self._tensor(value)
        if isinstance(value, SIMPLE):
            return value
        if isinstance(value, (torch.dtype, torch.device, enum.Enum)):
            return repr(value)
        if isinstance(value, types.BuiltinFunctionType):  # its repr may hold an address: its name and owner instead
            owner = getattr(value, "__self__", None)
            return ("builtin", getattr(value, "__module__", None), value.__qualname__,
                    None if owner is None or isinstance(owner, types.ModuleType) else _class_name(owner))
        if isinstance(value, nn.Module) or depth == 0:  # modules are described once each, by named_modules
            return _class_name(value)
        if isinstance(value, (list, tuple)):
            return [self.describe(item, depth - 1) for item in value]
        if isinstance(value, (set, frozenset)):
            return sorted(repr(self.describe(item, depth - 1)) for item in value)
        if isinstance(value, dict):
            return [(self.describe(key, 0), self.describe(item, depth - 1)) for key, item in value.items()]
        if isinstance(value, (types.FunctionType, types.MethodType, functools.partial)):
            return self._function(value, depth)
        if hasattr(value, "to_dict") and hasattr(value, "model_type"):  # a transformers config: its own JSON
            return ("config", repr(sorted(value.to_dict().items(), key=lambda item: item[0])))
        attributes = getattr(value, "__dict__", None)
        if attributes is None:
            return _class_name(value)
        return (_class_name(value), {name: self.describe(item, depth - 1) for name, item in attributes.items()
                                     if name not in UNTRACED})

    def describe_module(self, module: nn.Module) -> dict:
        """A module's own attributes, parameters and buffers, and its hooks in order (not their handle ids, which
        differ between processes); its children are described on their own."""
        described = {name: self.describe(value) for name, value in vars(module).items()
                     if name not in ("_modules", *UNTRACED) and "hooks" not in name}
        for name in (n for n, value in vars(module).items() if n.endswith("hooks") and isinstance(value, dict)):
            described[name] = [self.describe(hook) for hook in vars(module)[name].values()]  # keyed by handle ids
        for name in HOOK_DICTS:
            hooks = getattr(module, name)
            flags = getattr(module, f"{name}_with_kwargs", {}), getattr(module, "_forward_hooks_always_called", {})
            described[name] = [(self.describe(hook), key in flags[0], key in flags[1]) for key, hook in hooks.items()]
        return described

    def _tensor(self, tensor: torch.Tensor) -> tuple:
        try:
            address = tensor.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):  # a tensor without storage (a subclass, a fake tensor)
            address = -id(tensor)
        storage = self.storages.setdefault(address, len(self.storages))
        # not its static-address mark: dynamo marks every parameter it traces, so a process that has compiled one
        # step would name its next ones differently from a process that loaded them
        return ("tensor", _class_name(tensor), tuple(tensor.shape), tensor.stride(), tensor.storage_offset(),
                str(tensor.dtype), str(tensor.device), tensor.requires_grad, tensor.is_inference(), storage)

    def _function(self, function, depth: int) -> tuple:
        if isinstance(function, functools.partial):
            return ("partial", self.describe(function.func, depth - 1), self.describe(function.args, depth - 1),
                    self.describe(function.keywords, depth - 1))
        if isinstance(function, types.MethodType):
            return ("method", function.__func__.__qualname__, self.describe(function.__self__, depth - 1))
        cells = [cell.cell_contents for cell in function.__closure__ or ()]
        return ("function", function.__module__, function.__qualname__, self.describe(cells, depth - 1),
                self.describe(function.__defaults__, depth - 1))


@functools.lru_cache(maxsize=1)
def source_digest() -> str:
    """A hash of the degrader package's Python source: any change of the code the step runs is another step."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _attention_functions(model: nn.Module, describer: Describer) -> list:
    """The attention and mask functions registered under the model's implementation names (process-wide)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    names = {config._attn_implementation for config in (model.config, model.config.get_text_config(decoder=True))}
    return [(name, describer.describe(AttentionInterface._global_mapping.get(name), 1),
             describer.describe(AttentionMaskInterface._global_mapping.get(name), 1))
            for name in sorted(map(str, names))]


def _class_name(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"
