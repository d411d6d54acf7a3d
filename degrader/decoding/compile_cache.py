"""A persistent compile cache for the decode step, keyed by everything that can make a compiled entry stale.

torch.compile (inductor) already keeps an on-disk cache (FX graphs, AOT autograd entries, autotune results,
Triton kernels) under /tmp/torchinductor_<user>; a warm cache cuts an actor's warm-up from about a minute to
about twenty seconds. Here that cache moves under the project's cache directory, one folder per key:

    cache_dir()/compile/<key>      key = torch2.11.0-tf5.17.0-<hash12>

The hash covers torch, transformers, Triton, CUDA and Python versions, the GPU name and compute capability, and
the model's identity (its spec and a hash of its config), so an upgrade or another model starts a fresh folder
and never reads an entry compiled for something else. Inductor's own keys already guard correctness; the folder
per key keeps old entries from piling up in one place and makes a stale cache easy to delete.

Call `use_model_compile_cache(loaded)` (or `use_compile_cache(folder)`) in the process that compiles, after the
model loads and before the first compile:
inductor reads TORCHINDUCTOR_CACHE_DIR and TRITON_CACHE_DIR lazily (and hands them to its compile workers per
job), but memoizes some paths, which `clear_caches` forgets.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
import torch._functorch.config
import torch._inductor.config
from torch._inductor import codecache

from degrader.embedded import cache_dir

if TYPE_CHECKING:
    from degrader.models import LoadedModel

KEY_HASH_LENGTH = 12
# The environment variables this module sets; TORCHINDUCTOR_CACHE_DIR covers the FX graph, AOT autograd and
# autotune caches (all under it), TRITON_CACHE_DIR the compiled Triton kernels.
CACHE_DIR_ENV = "TORCHINDUCTOR_CACHE_DIR"
TRITON_DIR_ENV = "TRITON_CACHE_DIR"


def compile_cache_key(model: str | Mapping[str, Any], device: torch.device | str) -> str:
    """The cache folder's name for `model` (a spec, or a description with "spec" and optionally "config") on
    `device`."""
    return format_key({**compile_environment(torch.device(device)), **model_identity(model)})


def loaded_model_key(loaded: LoadedModel) -> str:
    """The key of a loaded model (a `LoadedModel`): its spec, config as loaded, dtype and 4-bit flag, its device.

    Needs no network (the spec form reads the config from the Hub for a Hugging Face id)."""
    description = loaded.description
    config = {"config": loaded.model.config.to_dict(), "dtype": description.get("dtype"),
              "load_in_4bit": description.get("load_in_4bit")}
    return compile_cache_key({"spec": description.get("spec", loaded.name), "config": config}, loaded.device)


def use_model_compile_cache(loaded: LoadedModel) -> CompileCacheRedirect:
    """Point the compile caches at cache_dir()/compile/<key of the loaded model>; call it before the first compile."""
    return use_compile_cache(compile_cache_dir(loaded_model_key(loaded)))


def compile_cache_dir(key: str) -> Path:
    """Where the compile cache of `key` lives: cache_dir()/compile/<key>."""
    return cache_dir() / "compile" / key


def format_key(inputs: Mapping[str, str]) -> str:
    """`torch<version>-tf<version>-<hash12>`: readable versions, then a hash over every input."""
    digest = hashlib.sha256(json.dumps(dict(inputs), sort_keys=True).encode()).hexdigest()[:KEY_HASH_LENGTH]
    return f"torch{_public(inputs.get('torch', '?'))}-tf{_public(inputs.get('transformers', '?'))}-{digest}"


def compile_environment(device: torch.device) -> dict[str, str]:
    """The software and hardware a compiled entry depends on: library versions, CUDA, the device, Python."""
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "triton": _package_version("triton") or _package_version("pytorch-triton") or "none",
        "cuda": torch.version.cuda or "none",
        "device": _device_identity(device),
        "python": platform.python_version(),
    }


def model_identity(model: str | Mapping[str, Any]) -> dict[str, str]:
    """The model part of the key: its spec and a hash of its config dict (read without loading weights)."""
    if isinstance(model, str):
        spec, config = model, None
    elif "spec" in model:
        spec, config = model["spec"], model.get("config")
    else:
        raise ValueError(f"a model description needs a 'spec' key (load_model's description has one); got keys "
                         f"{sorted(model)}")
    config = model_config(spec) if config is None else config
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    return {"model": spec, "model_config": config_hash}


def model_config(spec: str) -> dict[str, Any]:
    """The config dict of `spec`: the random architecture's, else the folder's or Hub's config.json."""
    from degrader import embedded, models, random_models

    models.check_spec(spec)
    if spec.startswith(models.RANDOM_PREFIX):
        return random_models.random_config(spec[len(models.RANDOM_PREFIX):]).to_dict()
    from transformers import AutoConfig

    folder = embedded.embedded_folder() if spec == models.EMBEDDED_SPEC else spec
    return AutoConfig.from_pretrained(folder, token=models.hf_token()).to_dict()


@dataclass
class CompileCacheRedirect:
    """What `use_compile_cache` changed, so that `undo` restores it (None: the variable was unset)."""

    directory: Path
    previous_env: dict[str, str | None] = field(default_factory=dict)
    previous_config: dict[str, bool] = field(default_factory=dict)
    previous_header_dir: str | None = None

    def undo(self) -> None:
        """Restore the environment variables and config values from before the redirect."""
        for name, value in self.previous_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _set_cache_flags(self.previous_config)
        _set_header_dir(self.previous_header_dir)
        _forget_cached_paths()


def use_compile_cache(directory: Path | str) -> CompileCacheRedirect:
    """Point inductor's on-disk caches (FX graph, AOT autograd, autotune) and Triton's kernel cache at `directory`.

    Turns the FX graph and AOT autograd caches on, unless TORCHINDUCTOR_FX_GRAPH_CACHE /
    TORCHINDUCTOR_AUTOGRAD_CACHE force them off. Returns the redirect; `.undo()` restores what was there."""
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    targets = {CACHE_DIR_ENV: str(directory), TRITON_DIR_ENV: str(directory / "triton")}
    redirect = CompileCacheRedirect(directory, {name: os.environ.get(name) for name in targets}, _cache_flags(),
                                    getattr(codecache, "_HEADER_DIR", None))
    os.environ.update(targets)
    _set_cache_flags({"fx_graph_cache": True, "enable_autograd_cache": True})
    _set_header_dir(str(directory / "precompiled_headers"))
    _forget_cached_paths()
    return redirect


def save_artifacts(path: Path | str) -> bool:
    """Write this process's compile artifacts (torch.compiler's Mega-Cache) to `path` atomically; False if none.

    The bundle holds the same entries as the on-disk caches (plus dynamo's profiles) in one portable file,
    for a node that does not share the cache folder."""
    from degrader.files import atomic_write_bytes

    artifacts = torch.compiler.save_cache_artifacts()
    if artifacts is None:
        return False
    atomic_write_bytes(Path(path), artifacts[0])
    return True


def load_artifacts(path: Path | str) -> bool:
    """Load a bundle written by `save_artifacts` into the caches before compiling; False if `path` is missing."""
    path = Path(path)
    if not path.is_file():
        return False
    return torch.compiler.load_cache_artifacts(path.read_bytes()) is not None


def _cache_flags() -> dict[str, bool]:
    return {"fx_graph_cache": torch._inductor.config.fx_graph_cache,
            "enable_autograd_cache": torch._functorch.config.enable_autograd_cache}


def _set_cache_flags(flags: Mapping[str, bool]) -> None:
    for name, value in flags.items():
        module = torch._inductor.config if name == "fx_graph_cache" else torch._functorch.config
        setattr(module, name, value)


def _set_header_dir(folder: str | None) -> None:
    """Move the precompiled C++ headers of CPU kernels: inductor fixes their folder at import, from the default."""
    if folder is not None and hasattr(codecache, "_HEADER_DIR"):  # private; absent in other torch versions
        codecache._HEADER_DIR = folder
        codecache._HEADER_LOCK_DIR = os.path.join(folder, "locks")


def _forget_cached_paths() -> None:
    """Drop inductor's memoized cache paths (the local autotune cache path, loaded code) so the new folder counts."""
    from torch._inductor.utils import clear_caches

    clear_caches()


def _device_identity(device: torch.device) -> str:
    if device.type != "cuda":
        return device.type
    major, minor = torch.cuda.get_device_capability(device)
    return f"{torch.cuda.get_device_name(device)} sm{major}{minor}"


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _public(version: str) -> str:
    """`2.11.0+cu128` -> `2.11.0`: the local part stays in the hash, not in the readable prefix."""
    return version.split("+")[0]
