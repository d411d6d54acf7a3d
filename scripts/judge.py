"""Judge results with an LLM: python scripts/judge.py results/outputs_X.json --judge openai:gpt-4o-mini

--judge openai:MODEL  any OpenAI-compatible chat endpoint (OPENAI_BASE_URL and OPENAI_API_KEY from the
                      environment or .env; GPT-4o-mini, or a local vLLM / llama.cpp / Ollama server)
--judge local:MODEL   a local model on the project's Ray actors (google/gemma-3-4b-it, embedded,
                      random:gemma-3-4b-it), one actor per GPU (--gpus N; 0 = the CPU)

Only the (record, family) pairs not yet judged by this judge with the current prompt files run; judgments
go to results/judged/<output>.judged.<judge>.json. The parse rate of each family is printed at the end
and stored in <judged>.runs.json.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors.logs import log_path, setup_driver_logging  # noqa: E402
from analysis.judge import FAMILIES, select_families  # noqa: E402
from analysis.judge.backends import OpenAIJudge, openai_settings  # noqa: E402
from analysis.judge.run import judge_file, stored_parse_rates  # noqa: E402
from analysis.judge.store import judge_slug  # noqa: E402
from degrader.models import check_spec  # noqa: E402
from degrader.run.store import CorruptOutputError, OutputLockedError  # noqa: E402

logger = logging.getLogger("judge")
BACKENDS = ("openai", "local")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --help explains each option."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="output JSON files of the launcher")
    parser.add_argument("--judge", required=True, help="openai:MODEL or local:MODEL")
    parser.add_argument("--metrics", help=f"comma-separated families (default: all): {', '.join(FAMILIES)}")
    parser.add_argument("--gpus", type=int, default=1, help="local judge: GPUs, one actor each; 0 runs on the CPU")
    parser.add_argument("--address", help="local judge: join this Ray cluster instead of starting one")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="longest reply")
    parser.add_argument("--batch-size", type=int, default=64, help="local judge: prompts per actor call")
    parser.add_argument("--workers", type=int, default=4, help="openai judge: requests at once")
    parser.add_argument("--max-attempts", type=int, default=6, help="openai judge: attempts per request")
    parser.add_argument("--logs-dir", type=Path, default=ROOT / "logs", help="where run logs go")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def split_spec(spec: str) -> tuple[str, str]:
    """('openai', 'gpt-4o-mini') from 'openai:gpt-4o-mini'; an unknown backend raises and lists the valid ones."""
    backend, sep, model = spec.partition(":")
    if backend not in BACKENDS or not sep or not model:
        raise ValueError(f"--judge {spec!r}: write BACKEND:MODEL with BACKEND one of {', '.join(BACKENDS)}, "
                         "e.g. openai:gpt-4o-mini or local:google/gemma-3-4b-it")
    return backend, model


def run(args: argparse.Namespace, backend, families) -> int:
    """Judge every file; print each family's parse rate (this run, and over everything stored).

    Exit code 1 when some requests failed after their retries: they stay missing, and the same command
    asks for them again."""
    failed = 0
    for path in args.files:
        summary = judge_file(path, backend, families)
        failed += summary["failed"]
        print(f"{path}: {summary['judged']} judged, {summary['failed']} failed -> {summary['judged_file']}")
        for family, rate in stored_parse_rates(path, summary["judge"], families).items():
            print(f"  {family}: parse rate {rate['parse_rate']:.3f} ({rate['parsed']}/{rate['judgments']} stored)")
    if failed:
        print(f"error: {failed} judgments failed after their retries; run the same command to ask again",
              file=sys.stderr)
    return 1 if failed else 0


def run_local(args: argparse.Namespace, model: str, families, log_file: Path) -> int:
    """Start Ray (or join --address), load the judge on its actors, judge, stop them."""
    import ray

    from actors.judge_job import LocalJudge
    from actors.launcher import check_resources, start_ray
    from degrader.run.options import LaunchOptions

    start_ray(args.address, f"degrader-judge-{judge_slug(model)}")
    backend = LocalJudge(model, args.gpus, args.max_new_tokens, args.batch_size, log_file.resolve(), args.log_level)
    try:
        check_resources(LaunchOptions(gpus=args.gpus))
        backend.start()
        return run(args, backend, families)
    finally:
        backend.close()
        ray.shutdown()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = [str(p) for p in args.files if not p.exists()]
    try:
        if missing:
            raise ValueError(f"no such results file: {', '.join(missing)}")
        backend_name, model = split_spec(args.judge)
        if backend_name == "local":
            check_spec(model)  # before Ray starts
        families = select_families(FAMILIES, [m.strip() for m in args.metrics.split(",")] if args.metrics else None)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    log_file = log_path(args.logs_dir, f"judge_{judge_slug(args.judge)}")
    setup_driver_logging(log_file, args.log_level)
    try:
        if backend_name == "local":
            return run_local(args, model, families, log_file)
        base_url, api_key = openai_settings()
        backend = OpenAIJudge(model, base_url, api_key, args.workers, args.max_new_tokens, args.max_attempts)
        return run(args, backend, families)
    except (OutputLockedError, CorruptOutputError, ValueError, RuntimeError) as error:
        logger.error("%s", error)
        return 1
    except KeyboardInterrupt:
        logger.warning("interrupted: every stored judgment is kept; run the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
