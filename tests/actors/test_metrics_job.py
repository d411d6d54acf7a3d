"""The metrics as a Ray job on a real local cluster: the same table as the one-process loop, and no work on a rerun.

The job (`actors.metrics_job.score_chunks`) gets its chunks and scoring step from
`analysis.metrics_store.score_with_ray`: actors/ never imports analysis/."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from actors.metrics_job import score_chunks
from analysis.metrics_store import (
    register_metrics,
    score_records,
    score_with_ray,
    table_path,
    update_table,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "results" / "samples"


def sample_records() -> list[dict]:
    """Dreams and Cookie Theft records of the committed sample (280)."""
    return [record for pattern in ("*dreams*.json", "*cookies*.json")
            for record in json.loads(next(SAMPLES.glob(f"outputs_{pattern}")).read_text())]


def test_ray_job_gives_the_one_process_table(ray_cluster):
    records, names = sample_records()[::7], register_metrics()  # 40 records in 4 chunks over 2 workers
    by_ray = score_with_ray(records, names, workers=2, chunk_size=10)
    in_process = score_records(records, names, chunk_size=10)
    pd.testing.assert_frame_equal(by_ray, in_process, check_exact=True)
    assert by_ray["sentence_similarity"].notna().sum() > 10


def test_ray_path_of_the_table_and_a_rerun_that_computes_nothing(ray_cluster, tmp_path):
    results = tmp_path / "outputs_job.json"
    records = sample_records()[1::10]
    results.write_text(json.dumps(records))
    names = register_metrics()
    table, scored = update_table(results, names, workers=2, ray_threshold=0)  # 28 > 0 missing: Ray
    written = table_path(results).read_bytes()
    again, rescored = update_table(results, names, workers=2, ray_threshold=0)
    assert (scored, rescored) == (len(records), 0) == (28, 0)
    assert table_path(results).read_bytes() == written
    pd.testing.assert_frame_equal(again, table, check_exact=True)


def test_workers_must_be_positive(ray_cluster):
    with pytest.raises(ValueError, match="workers must be at least 1"):
        score_with_ray(sample_records()[:2], register_metrics(), workers=0)


def test_chunks_come_back_in_their_order_whatever_the_scoring_step(ray_cluster):
    """The job knows no metric: any picklable step, one result per chunk in the order of the chunks."""
    parts = [[{"n": n} for n in range(start, start + size)] for start, size in ((0, 3), (3, 1), (4, 2))]
    frames = score_chunks(parts, lambda part: pd.DataFrame(part).assign(size=len(part)), workers=2)
    assert [frame["n"].tolist() for frame in frames] == [[0, 1, 2], [3], [4, 5]]
    assert [frame["size"].tolist() for frame in frames] == [[3, 3, 3], [1], [2, 2]]
    assert score_chunks([], len, workers=2) == []
