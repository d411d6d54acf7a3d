"""Starts Ray (or joins a cluster), sets up the run's log, and runs the driver with clear errors."""

from __future__ import annotations

import argparse
import logging

import ray

from actors.driver import LaunchOptions, run_experiment
from actors.logs import log_path, setup_driver_logging
from actors.plan import output_path
from actors.store import CorruptOutputError, OutputLockedError
from configs.experiments import ExperimentConfig

logger = logging.getLogger(__name__)


def options_from(args: argparse.Namespace, log_file) -> LaunchOptions:
    """The driver's options from the command line."""
    return LaunchOptions(results_dir=args.results_dir, gpus=args.gpus, actors_per_gpu=args.actors_per_gpu,
                         cpu_actors=args.cpu_actors, force=args.force, log_path=log_file.resolve(),
                         log_level=args.log_level)


def start_ray(address: str | None, namespace: str) -> None:
    """Start a local cluster, or join `address`; print the dashboard URL."""
    context = ray.init(address=address, namespace=namespace, include_dashboard=None,
                       logging_level=logging.WARNING)
    url = context.dashboard_url
    logger.info("Ray dashboard: %s", f"http://{url}" if url else "not running (install ray[default])")


def check_resources(options: LaunchOptions) -> None:
    """Refuse to wait forever for GPUs the cluster does not have."""
    available = ray.cluster_resources().get("GPU", 0)
    if options.gpus > available:
        raise ValueError(f"--gpus {options.gpus} but the Ray cluster has {available:g} GPUs; "
                         "use --gpus 0 to run on the CPU")


def launch(config: ExperimentConfig, args: argparse.Namespace) -> int:
    """Run the experiment; returns the exit code (0 done, 1 refused, 130 interrupted)."""
    experiment_id = output_path(config, args.results_dir).stem.removeprefix("outputs_")
    log_file = log_path(args.logs_dir, experiment_id)
    setup_driver_logging(log_file, args.log_level)
    logger.info("log file %s", log_file)
    options = options_from(args, log_file)
    try:
        start_ray(args.address, f"degrader-{experiment_id}")
        check_resources(options)
        summary = run_experiment(config, options)
    except (OutputLockedError, CorruptOutputError, ValueError) as error:
        logger.error("%s", getattr(error, "cause", None) or error)
        return 1
    except KeyboardInterrupt:
        logger.warning("interrupted: every flushed record is kept; run the same command to resume")
        return 130
    finally:
        ray.shutdown()
    logger.info("done: %s", summary)
    return 0
