"""The local LLM judge on the real embedded model: ModelActors on a real local Ray cluster answer the judge
prompts (stored raw, and as unparsed where the base model's reply is not the rubric's JSON), a second run
judges nothing, and the static compiled decode path gives the eager path's replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from actors.judge_job import LocalJudge
from analysis.judge import FAMILIES, judged_path
from analysis.judge.run import judge_file, pending_requests
from degrader.decoding.text_generator import LENGTH_BUCKET
from degrader.run.keys import record_key
from degrader.run.store import read_records
from degrader.run.worker import ModelWorker
from tests.actors.conftest import small_config

SAMPLES = Path(__file__).resolve().parents[2] / "results" / "samples"
NEW_TOKENS = 8
BATCH = 4


@pytest.fixture(scope="module")
def eager_worker():
    worker = ModelWorker(small_config("max_batch_size=4"), torch.device("cpu"), "eager", static=False)
    worker.load()
    return worker


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    """Two dreams and a keyed IQ item of the committed sample: 3 + 3 + 1 judge prompts."""
    records = [*read_records(next(SAMPLES.glob("*dreams.json")))[:2], read_records(next(SAMPLES.glob("*IQ.json")))[0]]
    path = tmp_path / "outputs_sample.json"
    path.write_text(json.dumps(records))
    return path


def test_local_judge_stores_raw_replies_as_unparsed_and_resumes(ray_cluster, results_file, tmp_path, eager_worker):
    families = list(FAMILIES.values())
    requests = pending_requests(read_records(results_file), families, set())
    judge = LocalJudge("embedded", gpus=0, max_new_tokens=NEW_TOKENS, batch_size=BATCH, log_path=tmp_path / "run.log")
    try:
        assert judge.start()["architecture"] == "Gemma3ForCausalLM"
        first = judge_file(results_file, judge, families)
        second = judge_file(results_file, judge, families)
    finally:
        judge.close()
    assert (first["judged"], first["failed"], second["judged"]) == (7, 0, 0)
    judgments = read_records(judged_path(results_file, "local:embedded"))
    assert len(judgments) == 7
    for judgment in judgments:
        assert judgment["judge_model"] == "embedded:gemma-3-270m" and judgment["judge_backend"] == "local"
        assert isinstance(judgment["raw_reply"], str) and 0 < judgment["judge_reply_tokens"] <= NEW_TOKENS
        assert (judgment["fields"] is None) == judgment["unparsed"] == (judgment["parse_error"] is not None)
    unparsed = sum(j["unparsed"] for j in judgments)
    assert unparsed >= 5  # a 270M base model with 8 new tokens hardly ever writes the rubric's JSON

    # plumbing: the actor's replies are the greedy replies of the same model in this process, batch by batch
    prompts = [r.prompt for r in requests]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # as LocalJudge.complete batches them
    expected = {}
    for start in range(0, len(order), BATCH):
        batch = order[start: start + BATCH]
        for i, generation in zip(batch, eager_worker.generate_texts([prompts[i] for i in batch], NEW_TOKENS),
                                 strict=True):
            expected[(requests[i].family.name, requests[i].record["prompt_text"])] = generation.text
    by_request = {(j["family"], r["prompt_text"]): j["raw_reply"] for j in judgments
                  for r in read_records(results_file) if j["record_key"] == record_key(r)}
    assert by_request == expected
    assert "JudgeActor:cpu0" in (tmp_path / "run.log").read_text()
    print(f"\nlocal judge (embedded 270M, {NEW_TOKENS} new tokens): {len(judgments)} judgments, "
          f"parse rate {len(judgments) - unparsed}/{len(judgments)}; second run judged {second['judged']}")


def test_static_judge_path_gives_the_eager_replies(eager_worker):
    """The GPU path's shapes (static cache, prompts padded to their length bucket, a short batch padded with
    rows) on the CPU, uncompiled (compiling two buckets on 2 CPU cores takes minutes): prompts of two buckets."""
    short = "Describe a dream."
    long = " ".join(["Tell me about a dream where you were back at school."] * 14)
    prompts = [short, long, short + " Please.", long + " Now.", "Share a dream.", "Tell me a dream."]
    eager = [g.text for g in eager_worker.generate_texts(prompts, 6)]
    static = ModelWorker(small_config("max_batch_size=3"), torch.device("cpu"), "static", static=True,
                         compile_mode=None)
    static.load()
    replies = [g.text for g in static.generate_texts(prompts, 6)]
    assert replies == eager and len(set(replies)) > 1
    # 4 short prompts: a batch of 3 and one padded to 3 rows; 2 long ones padded to 3 rows
    assert sorted(static.texts.decoders) == [(3, LENGTH_BUCKET, 6), (3, 2 * LENGTH_BUCKET, 6)]
    assert all(0 < g.tokens_out <= 2 for g in static.generate_texts(prompts[:2], 6, steps=2))  # a warm-up
    # past the sliding window (512 tokens here) a static cache would recompile at every step: eager instead
    longest = " ".join(["Tell me about a dream where you were back at school."] * 40)
    assert static.generate_texts([longest], 6)[0].text == eager_worker.generate_texts([longest], 6)[0].text
    assert all(length + 6 <= 512 for _, length, _ in static.texts.decoders)
    assert static.generate_texts([longest], 6, steps=2)[0].tokens_out == 0  # an eager warm-up does nothing


@pytest.mark.slow
def test_judge_cli_runs_the_local_backend_on_its_own_ray_cluster(results_file, tmp_path):
    """scripts/judge.py as a user runs it: it starts Ray, judges one family, prints and stores the parse rate."""
    import subprocess
    import sys

    from analysis.judge.store import runs_path
    from tests.conftest import ROOT

    command = [sys.executable, str(ROOT / "scripts" / "judge.py"), str(results_file), "--judge", "local:embedded",
               "--gpus", "0", "--metrics", "affect", "--max-new-tokens", "4", "--logs-dir", str(tmp_path / "logs")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 judged, 0 failed" in done.stdout and "affect: parse rate 0.000 (0/2 stored)" in done.stdout
    judged = judged_path(results_file, "local:embedded")
    assert {j["family"] for j in read_records(judged)} == {"affect"}
    assert read_records(runs_path(judged))[0]["parse_rates"] == {"affect": {"judgments": 2, "parsed": 0,
                                                                             "parse_rate": 0.0}}
    wrong = subprocess.run([*command[:4], "local:./no-such-model", "--gpus", "0"], capture_output=True, text=True,
                           timeout=600, check=False)
    assert wrong.returncode == 2 and "model folder './no-such-model' does not exist" in wrong.stderr
