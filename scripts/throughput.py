"""Throughput of a finished run from its records: tokens per second between the first and last batch.

    python scripts/throughput.py results/outputs_....json
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from degrader.run.store import read_records  # noqa: E402


def seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def main() -> None:
    records = read_records(Path(sys.argv[1]))  # a run still in progress: its journal too
    starts = [seconds(r["timestamp"]) - r["duration"] for r in records]
    ends = [seconds(r["timestamp"]) for r in records]
    span = max(ends) - min(starts)
    tokens = sum(r["tokens"] for r in records)
    actors = sorted({r["actor"] for r in records})
    print(json.dumps({"records": len(records), "tokens": tokens, "generation_span_s": round(span, 1),
                      "tokens_per_s": round(tokens / span, 1), "actors": actors}))


if __name__ == "__main__":
    main()
