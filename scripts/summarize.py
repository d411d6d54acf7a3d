"""Summarize result files: python scripts/summarize.py RESULTS.json [MORE.json ...] [--out FOLDER]

Writes into FOLDER (default: results/summary) the tables as CSV and Markdown (vulnerability: the level
where Cohen's d first reaches 0.8; spearman: the trend test; summary and level_stats: per-level means,
95 % intervals and effect sizes; trends), one PNG per variant and per lesion (with the `analysis` extra:
matplotlib), and report.html, one self-contained file with all of it. Works on runs in progress and says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd

from analysis.iq_accuracy import category_accuracy
from analysis.judge import FAMILIES, judged_frame, merge_judged
from analysis.judge.store import JUDGED_DIR, judge_slug
from analysis.metrics_store import load_metrics
from analysis.report import Table, write_report
from analysis.statistics import D_UNITS
from analysis.summary import load


def judged_files(paths: list[Path], judge: str | None) -> list[Path]:
    """The judge's stores of the results files (`results/judged/<stem>.judged.<judge>.json`)."""
    pattern = f"*.judged.{judge_slug(judge) if judge else '*'}.json"  # a spec (openai:gpt-4o-mini) or its slug
    found = [p for path in paths for p in sorted((path.parent / JUDGED_DIR).glob(pattern))
             if p.name.startswith(f"{path.stem}.judged.") and not p.name.endswith(".runs.json")]
    judges = {p.name.split(".judged.")[1].removesuffix(".json") for p in found}
    if len(judges) > 1:
        raise ValueError(f"outputs judged by several judges ({', '.join(sorted(judges))}): pick one with --judge")
    return found


def per_record_frame(args: argparse.Namespace) -> pd.DataFrame:
    """Every record's metrics: the cached metrics tables (scored where missing), then the judged columns."""
    frame = load_metrics(args.results, address=args.address, workers=args.workers)
    judged = judged_files(args.results, args.judge)
    return merge_judged(frame, judged_frame(judged, FAMILIES)) if judged else frame


def extra_tables(records: list[dict]) -> list[Table]:
    """Tables the report shows after the standard ones, as (title, DataFrame): IQ accuracy per category."""
    accuracy = category_accuracy(records)
    return [("iq_accuracy", accuracy)] if len(accuracy) else []


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="output JSON files of the launcher")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "summary", help="folder for the summary")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap intervals")
    parser.add_argument("--resamples", type=int, default=9999, help="bootstrap resamples per interval")
    parser.add_argument("--d-unit", choices=D_UNITS, default="repetition",
                        help="what Cohen's d pools: repetition means (default) or single records")
    parser.add_argument("--judge", help="the judge whose judgments to include (its spec, e.g. openai:gpt-4o-mini, "
                                        "or the slug in results/judged/<file>.judged.<slug>.json); needed only "
                                        "when several judged the files")
    parser.add_argument("--address", help="Ray cluster for scoring many new records (default: a local one)")
    parser.add_argument("--workers", type=int, help="Ray tasks at a time when scoring (default: the cluster's CPUs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    missing = [str(p) for p in args.results if not p.exists()]
    if missing:
        print(f"error: no such results file: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:  # a corrupt or foreign file, a metrics table or judges to choose: one line, no traceback
        records, notes = load(args.results)
        if not records:
            raise ValueError(f"no records yet in {', '.join(map(str, args.results))}")
        frame = per_record_frame(args)
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    written = write_report(frame, args.out, notes, extra_tables(records), seed=args.seed,
                           n_resamples=args.resamples, d_unit=args.d_unit)
    print((args.out / "vulnerability.md").read_text(encoding="utf-8"))
    for line in [*written.notes, *written.hints]:
        print(line)
    print(f"{len(records)} records -> {args.out}: {len(written.tables)} table files, {len(written.figures)} "
          f"figures, {written.html.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
