"""Are two runs' records the same? python scripts/compare_runs.py FIRST_RESULTS_DIR SECOND_RESULTS_DIR

Matches the records of each output file (outputs_*.json and its journal) by key and says, per file, how many
generated texts differ, whether their batch shapes (prompts and units per batch) differ too, and after how many
characters the differing texts part. Exit code 0 when both runs hold the same records with the same texts,
1 when they differ, 2 on bad input (like diff).

    python scripts/compare_runs.py /tmp/bs/0-cold/results /tmp/bs/1-warm/results
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from degrader.run.compare import compare_outputs  # noqa: E402
from degrader.run.store import CorruptOutputError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Print one line per output file and a verdict; 0 identical, 1 different, 2 bad input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path, help="results folder of the first run")
    parser.add_argument("second", type=Path, help="results folder of the second run")
    args = parser.parse_args(argv)
    for folder in (args.first, args.second):
        if not folder.is_dir():
            print(f"error: {folder} is not a folder: give two results folders (--results-dir of two launches)",
                  file=sys.stderr)
            return 2
    if args.first.resolve() == args.second.resolve():
        print(f"error: {args.first} is given twice: give the results folders of two launches", file=sys.stderr)
        return 2
    try:
        comparisons = compare_outputs(args.first, args.second)
    except CorruptOutputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not comparisons:
        print(f"error: no outputs_*.json in {args.first} or {args.second}: give the --results-dir folders of two "
              "launches", file=sys.stderr)
        return 2
    for comparison in comparisons:
        print(comparison.line())
    same = sum(c.identical for c in comparisons)
    print(f"{same} of {len(comparisons)} outputs identical")
    return 0 if same == len(comparisons) else 1


if __name__ == "__main__":
    sys.exit(main())
