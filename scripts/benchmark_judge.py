"""Judgments per second of the local LLM judge, and what the full dreams_it sweep would take.

python scripts/benchmark_judge.py --model random:gemma-3-4b-it --gpus 1 --records 2000

Self-contained: synthetic dream records are built from the committed sample's outputs (consecutive outputs
joined until each is about as long as a thesis output, 350 tokens), judged by every family that applies
to dreams through the real path (Ray actors, static compiled decode, the judge store in a temporary
folder). Load and warm-up (compiling each prompt length's decode step) are timed apart from judging.
Prints one JSON line. Random weights rarely emit an end token, so replies run to --max-new-tokens: an
upper bound on decode time per judgment (a real judge stops after its JSON object, ~40-80 tokens, but a
batch lasts as long as its longest reply).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.judge import FAMILIES, judged_path  # noqa: E402
from analysis.judge.run import judge_file, pending_requests  # noqa: E402
from degrader.run.store import read_records  # noqa: E402

SAMPLE = ROOT / "results" / "samples" / "outputs_mult_gauss_embedded-gemma-3-270m_2025_05_20_dreams.json"
DREAMS_IT_RECORDS = 27_740  # the thesis's full dreams_it sweep


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default="random:gemma-3-4b-it", help="judge model spec (local backend)")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs, one actor each; 0 runs on the CPU")
    parser.add_argument("--records", type=int, default=1000, help="synthetic dream records to judge")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="longest judge reply")
    parser.add_argument("--batch-size", type=int, default=64, help="prompts per actor call")
    parser.add_argument("--output-words", type=int, default=260, help="words per synthetic output (~350 tokens)")
    return parser.parse_args(argv)


def synthetic_records(n: int, words: int) -> list[dict]:
    """`n` distinct dream records whose outputs join consecutive sample outputs up to `words` words."""
    sample = read_records(SAMPLE)
    records = []
    for index in range(n):
        parts, count, offset = [], 0, index
        while count < words:
            text = sample[offset % len(sample)]["output"].strip()
            parts.append(text)
            count, offset = count + len(text.split()), offset + 1
        base = sample[index % len(sample)]
        records.append({**base, "output": "\n".join(parts), "repeat_index": index, "level_value": 0.0})
    return records


def estimate(rate: float, gpus: int) -> dict:
    """Hours for the full dreams_it sweep at the measured rate, on 1 and 4 GPUs (actors scale independently)."""
    per_record = sum(1 for f in FAMILIES.values() if "dreams" in f.tasks)
    judgments = DREAMS_IT_RECORDS * per_record
    per_gpu = rate / max(gpus, 1)
    return {"dreams_it_records": DREAMS_IT_RECORDS, "families_per_record": per_record, "dreams_it_judgments": judgments,
            "hours_1_gpu": round(judgments / per_gpu / 3600, 2),
            "hours_4_gpus": round(judgments / (4 * per_gpu) / 3600, 2),
            "assumes": "linear scaling over GPUs (one independent actor each) and this run's reply lengths"}


def device_name(gpus: int) -> str:
    """The GPU's name (this node's first), or 'cpu'."""
    import torch

    return torch.cuda.get_device_name(0) if gpus and torch.cuda.is_available() else "cpu"


def benchmark(args: argparse.Namespace, folder: Path) -> dict:
    """Load, warm up and judge; the figures of each phase."""
    import ray

    from actors.judge_job import LocalJudge

    results = folder / "outputs_benchmark_dreams.json"
    records = synthetic_records(args.records, args.output_words)
    results.write_text(json.dumps(records))
    families = [f for f in FAMILIES.values() if "dreams" in f.tasks]
    prompts = [r.prompt for r in pending_requests(records, families, set())]
    ray.init(logging_level=logging.WARNING, include_dashboard=False)
    judge = LocalJudge(args.model, args.gpus, args.max_new_tokens, args.batch_size, folder / "judge.log", "WARNING")
    try:
        started = time.perf_counter()
        judge.start()
        load_s = time.perf_counter() - started
        warm_up_s = judge.warm_up(prompts)  # one short batch per prompt length
        started = time.perf_counter()
        summary = judge_file(results, judge, families)
        judge_s = time.perf_counter() - started
    finally:
        judge.close()
        ray.shutdown()
    judgments = read_records(judged_path(results, f"local:{args.model}"))
    tokens = sum(j["judge_reply_tokens"] for j in judgments)
    rate = len(judgments) / judge_s
    return {"model": args.model, "gpus": args.gpus, "device": device_name(args.gpus), "records": args.records,
            "judgments": len(judgments), "failed": summary["failed"], "max_new_tokens": args.max_new_tokens,
            "batch_size": args.batch_size, "mean_prompt_chars": round(sum(map(len, prompts)) / len(prompts)),
            "load_s": round(load_s, 1), "warm_up_s": round(warm_up_s, 1), "judge_s": round(judge_s, 1),
            "judgments_per_s": round(rate, 2), "reply_tokens_per_s": round(tokens / judge_s, 1),
            "mean_reply_tokens": round(tokens / len(judgments), 1),
            "parse_rate": round(sum(not j["unparsed"] for j in judgments) / len(judgments), 3),
            "estimate": estimate(rate, args.gpus)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="benchmark_judge_") as folder:
        print(json.dumps(benchmark(args, Path(folder))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
