"""Score every record of result files:
python scripts/metrics.py RESULTS.json [MORE.json ...] [--address A] [--workers N]

Writes (or updates) `<results stem>.metrics.csv` next to each file: one row per record, one column
per registered metric. Only records missing from the table (or scored under another metric-set
version) are scored; files with more than --ray-threshold of them are scored as a Ray job.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.metrics_store import (
    RAY_THRESHOLD,
    register_metrics,
    table_path,
    update_table,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; --help explains each option."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="output JSON files of the launcher")
    parser.add_argument("--address", help="Ray cluster to join (e.g. 'auto' or HOST:6379); default: a local one")
    parser.add_argument("--workers", type=int, help="chunk tasks at a time (default: every CPU of the cluster); "
                                                    "1 scores in this process")
    parser.add_argument("--ray-threshold", type=int, default=RAY_THRESHOLD,
                        help="missing records of a file above which they are scored as a Ray job")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    missing = [str(path) for path in args.results if not path.exists()]
    if missing:
        print(f"error: no such results file: {', '.join(missing)}", file=sys.stderr)
        return 2
    names = register_metrics()
    for path in args.results:
        try:  # a corrupt or foreign results file, an unreadable table, no Ray cluster: one line, no traceback
            table, scored = update_table(path, names, args.address, args.workers, args.ray_threshold)
        except (ValueError, RuntimeError, OSError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            return 2
        print(f"{path}: {len(table)} records, {scored} scored -> {table_path(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
