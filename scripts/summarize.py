"""Summarize result files: python scripts/summarize.py RESULTS.json [MORE.json ...] [--out FOLDER]

Writes summary.csv, summary.md and one PNG per metric (with the `analysis` extra: matplotlib) into
FOLDER (default: results/summary). Works on runs in progress and says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.report import markdown, plot, write_csv  # noqa: E402
from analysis.summary import load, summarize  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="output JSON files of the launcher")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "summary", help="folder for the summary")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.results if not p.exists()]
    if missing:
        print(f"error: no such results file: {', '.join(missing)}", file=sys.stderr)
        return 2
    records, notes = load(args.results)
    rows = summarize(records)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, args.out / "summary.csv")
    table = markdown(rows, notes)
    (args.out / "summary.md").write_text(table, encoding="utf-8")
    plots = plot(rows, args.out)
    print(table)
    print(f"{len(records)} records -> {args.out}/summary.csv, summary.md, {len(plots)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
