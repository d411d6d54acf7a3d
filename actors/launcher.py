"""Starts Ray (or joins a cluster), sets up the run's log, and runs the driver with clear errors."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import ray

from actors.logs import log_path, setup_driver_logging
from configs.experiments import ExperimentConfig
from degrader.models import model_name_clean
from degrader.run.options import LaunchOptions, LaunchRequest
from degrader.run.plan import output_path
from degrader.run.store import CorruptOutputError, OutputLockedError, StoreWriteError

logger = logging.getLogger(__name__)


def launch_owner() -> str:
    """Who holds an output's lock, as a second launch is told: this launcher's pid, host and start time."""
    return f"launch pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}"


def start_ray(address: str | None, namespace: str) -> None:
    """Start a local cluster, or join `address`; print the dashboard URL."""
    context = ray.init(address=address, namespace=namespace, include_dashboard=None,
                       logging_level=logging.WARNING)
    url = context.dashboard_url
    if not url:
        logger.info("Ray dashboard: not running (install ray[default])")
        return
    # Ray >= 2.60 asks the browser for a token; the Metrics page needs Prometheus and Grafana (docs/design.md)
    logger.info("Ray dashboard: http://%s (token for its login box: 'ray get-auth-token')", url)


def check_resources(options: LaunchOptions) -> None:
    """Refuse to wait forever for GPUs the cluster does not have."""
    resources = ray.cluster_resources()
    if options.gpus > resources.get("GPU", 0):
        raise ValueError(f"--gpus {options.gpus} but the Ray cluster has {resources.get('GPU', 0):g} GPUs; "
                         "use --gpus 0 to run on the CPU")
    if options.n_actors * options.actor_resources()["num_cpus"] > resources.get("CPU", 0):
        raise ValueError(f"{options.n_actors} actors need {options.n_actors} CPUs but the Ray cluster has "
                         f"{resources.get('CPU', 0):g}; use fewer --cpu-actors")


def launch(configs: list[ExperimentConfig], request: LaunchRequest, missing: list[int] | None = None) -> int:
    """Run the experiments (a sweep's variants in turn); returns the exit code (0 done, 1 refused or stopped,
    130 interrupted). `missing`: records still missing per config (preflight); none at all starts no Ray."""
    run_id = experiment_id(configs, request)
    log_file = log_path(request.logs_dir, run_id)
    setup_driver_logging(log_file, request.log_level)
    logger.info("log file %s", log_file)
    options = request.options(log_file.resolve(), launch_owner())
    if missing is not None and not any(missing):
        logger.info("nothing to do: every record is already in %s (--force runs again)",
                    ", ".join(str(output_path(config, request.results_dir)) for config in configs))
        return 0
    try:
        return _run(configs, request, options, run_id, missing)
    finally:
        logger.info("timings %s", json.dumps({"total_s": round(time.monotonic() - request.started, 3)}))


def _imported(driver):
    """The driver module its import thread made; RuntimeError (one line) if its modules do not import here."""
    try:
        return driver.result()
    except ImportError as error:  # torch's compiler, triton... (an actor's ImportError is a RayError, not this)
        raise RuntimeError(f"cannot import the driver's modules ({type(error).__name__}: {error}): install the "
                           "requirements again (the README's first command)") from error


def experiment_id(configs: list[ExperimentConfig], request: LaunchRequest) -> str:
    """The run's name in its log file and Ray namespace: the output's, or the sweep's for several variants."""
    if len(configs) > 1:
        return f"sweep_{request.sweep or 'tasks'}_{model_name_clean(configs[0].model_name)}"
    return output_path(configs[0], request.results_dir).stem.removeprefix("outputs_")


def _run(configs: list[ExperimentConfig], request: LaunchRequest, options: LaunchOptions, run_id: str,
         missing: list[int] | None = None) -> int:
    """Start Ray in the namespace of `run_id` (`experiment_id`), run the sweep (`missing`: preflight's count per
    config) and turn its failures into one line and an exit code."""
    log_file = options.log_path
    try:
        # the driver's modules (ModelActor's class: torch's compiler, sympy, triton) import in a thread while Ray
        # starts: ray.init mostly waits for its processes (docs/performance.md, 4.6 s of imports on a GPU host)
        with ThreadPoolExecutor(1, thread_name_prefix="import-driver") as pool:
            driver = pool.submit(importlib.import_module, "actors.driver")
            start_ray(request.address, f"degrader-{run_id}")
            run_sweep = _imported(driver).run_sweep
        options = dataclasses.replace(options, ray_start_s=round(time.monotonic() - request.started, 3))
        check_resources(options)
        summary = run_sweep(configs, options, missing)
    except (OutputLockedError, CorruptOutputError, StoreWriteError, ValueError, RuntimeError) as error:
        logger.error("%s", getattr(error, "cause", None) or error)
        return 1
    except ConnectionError as error:  # --address auto without a cluster, or a cluster that went away
        logger.error("cannot reach the Ray cluster (%s): start it ('ray start --head') or fix --address",
                     str(error).strip().splitlines()[0][:300])
        return 1
    except ray.exceptions.RayError as error:  # anything else that went wrong in an actor:
        # its first line, not a traceback
        cause = getattr(error, "cause", None) or error
        logger.error("%s: %s (the run log %s has the details; every saved record is kept)", type(cause).__name__,
                     str(cause).strip().splitlines()[0][:300] if str(cause).strip() else "", log_file)
        return 1
    except KeyboardInterrupt:
        logger.warning("interrupted: every flushed record is kept; run the same command to resume")
        return 130
    finally:
        ray.shutdown()
    logger.info("done: %s", summary)
    return 0
