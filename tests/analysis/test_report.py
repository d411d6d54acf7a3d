"""The whole report: scripts/summarize.py on the committed sample, with and without matplotlib."""

import base64
import csv
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd

import analysis.metrics  # noqa: F401  (registers the text metrics)
from analysis.report import markdown, write_report
from analysis.summary import load
from analysis.table import metrics_frame
from scripts.summarize import main as summarize_main

SAMPLES = Path(__file__).resolve().parents[2] / "results" / "samples"
TABLES = ("vulnerability", "spearman", "summary", "level_stats", "trends")


def copies(folder: Path, pattern: str) -> list[str]:
    """The sample files matching `pattern`, copied to `folder` (summarize caches metric tables beside them)."""
    folder.mkdir(exist_ok=True)
    return [str(shutil.copy(p, folder)) for p in sorted(SAMPLES.glob(pattern))]


def test_summarize_writes_tables_figures_and_one_self_contained_html(tmp_path, capsys):
    out = tmp_path / "summary"
    paths = copies(tmp_path / "results", "outputs_*.json")
    assert summarize_main([*paths, "--out", str(out), "--resamples", "999", "--workers", "1"]) == 0
    assert len(list((tmp_path / "results").glob("*.metrics.csv"))) == 3  # one cached table per results file
    for name in TABLES:
        text = (out / f"{name}.md").read_text()
        assert (out / f"{name}.csv").stat().st_size > 100 and text.startswith("> some cells have only 2 repetition(s) "
                                                                              "with a value: cu_balance")
        assert "\n| metric |" in text or "\n| model_name |" in text
    vulnerability = pd.read_csv(out / "vulnerability.csv", index_col=0)
    assert list(vulnerability.columns) == [f"{t} mult_gauss attn_only (sigma)"
                                           for t in ("iq", "dreams", "cookie_theft")]
    assert {"tokens", "distinct_1", "repetition"} <= set(vulnerability.index)
    with open(out / "level_stats.csv", encoding="utf-8") as handle:
        levels = list(csv.DictReader(handle))
    assert {r["n_repetitions"] for r in levels if r["metric"] == "tokens"} == {"5"} and all(r["ci_low"] for r in levels)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 4 and sum(n.startswith("variant_") for n in pngs) == 3  # 3 variants + 1 normalised
    page = (out / "report.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    # level_stats and trends (over 40 rows) folded, the overview tables not
    assert page.count("<details><summary>") == 2
    assert ("<h2>Methods</h2>" in page and "Cohen&#x27;s d" in page
            and page.count("<table") == len(TABLES) + 1)  # + iq_accuracy
    printed = capsys.readouterr().out
    assert "| metric | iq mult_gauss attn_only (sigma) |" in printed
    # the sample has 5 repetitions; cu_balance has a value only where some unit was named
    assert "only 2 repetition(s) with a value: cu_balance (cookie_theft, level 0.4)" in printed
    assert "only 2 repetition(s) with a value: cu_balance" in page


def test_without_matplotlib_tables_and_html_still_come_with_a_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    paths = copies(tmp_path / "results", "outputs_*dreams.json")
    assert summarize_main([*paths, "--out", str(tmp_path), "--resamples", "99", "--workers", "1"]) == 0
    assert not list(tmp_path.glob("*.png")) and "data:image" not in (tmp_path / "report.html").read_text()
    assert (tmp_path / "vulnerability.csv").exists()
    assert "pip install -e '.[analysis]'" in capsys.readouterr().out


def test_extra_tables_and_partial_notes_reach_every_output(tmp_path):
    records, _ = load(sorted(SAMPLES.glob("outputs_*dreams.json")))
    accuracy = pd.DataFrame({"category": ["math", "logic"], "accuracy": [0.5, 0.25], "chance": [0.0, 0.5]})
    notes = ["results/x.json is partial: its run is in progress or was interrupted"]
    written = write_report(metrics_frame(records), tmp_path, notes, [("IQ accuracy per category", accuracy)],
                           n_resamples=99)
    assert tmp_path / "IQ_accuracy_per_category.csv" in written.tables
    assert pd.read_csv(tmp_path / "IQ_accuracy_per_category.csv").equals(accuracy)
    page = written.html.read_text()
    assert "IQ accuracy per category" in page and "is partial" in page
    assert (tmp_path / "vulnerability.md").read_text().startswith("> results/x.json is partial")


def test_markdown_escapes_pipes_and_keeps_the_index():
    table = pd.DataFrame({"variant a": ["0.3", "a|b"]}, index=pd.Index(["tokens", "x"], name="metric"))
    assert markdown(table).splitlines() == ["| metric | variant a |", "|---|---|", "| tokens | 0.3 |", "| x | a\\|b |"]


def test_files_without_records_are_a_clear_error(tmp_path, capsys):
    (tmp_path / "out.json").write_text("[]")
    assert summarize_main([str(tmp_path / "out.json"), "--out", str(tmp_path / "summary")]) == 2
    assert "no records yet" in capsys.readouterr().err and not (tmp_path / "summary").exists()


def write_judgments(output: Path, judge: str, coherence) -> Path:
    """A judge's store for every record of `output`: narrative replies whose coherence is coherence(record)."""
    from analysis.judge import FAMILIES, judged_path
    from analysis.judge.store import judgment_key, make_judgment
    from degrader.run.store import ResultStore

    path = judged_path(output, judge)
    path.parent.mkdir(exist_ok=True)
    store = ResultStore(path, judgment_key)
    for record in load([output])[0]:
        reply = json.dumps({"coherence": coherence(record), "derailment": 1, "tangentiality": 1, "grammar": 4})
        store.add([make_judgment(record, FAMILIES["narrative"], reply, {"judge": judge})])
    store.close()
    return path


def test_judged_metrics_reach_the_statistics_and_two_judges_need_a_choice(tmp_path, capsys):
    (dreams,) = copies(tmp_path / "results", "outputs_*dreams.json")
    # a judge that finds the damaged dreams less coherent, the more so at higher sigma
    write_judgments(Path(dreams), "openai:test", lambda r: 5 - round(2 * r["level_value"] + r["repeat_index"] % 2))
    out = tmp_path / "summary"
    assert summarize_main([dreams, "--out", str(out), "--resamples", "99", "--workers", "1"]) == 0
    vulnerability = pd.read_csv(out / "vulnerability.csv", index_col=0)
    assert vulnerability.loc["judge_coherence"].iloc[0] not in ("n/a", "not reached")
    trends = pd.read_csv(out / "trends.csv")
    coherence = trends[trends["metric"] == "judge_coherence"].iloc[0]
    assert coherence["spearman_rho"] < 0 and coherence["spearman_p"] < 0.01  # falls with sigma, one-sided
    write_judgments(Path(dreams), "local:other", lambda r: 3)
    capsys.readouterr()
    assert summarize_main([dreams, "--out", str(out), "--resamples", "99", "--workers", "1"]) == 2
    assert "pick one with --judge" in capsys.readouterr().err
    assert summarize_main([dreams, "--out", str(out), "--resamples", "99", "--workers", "1",
                           "--judge", "local:other"]) == 0  # the spec, as judge.py takes it
    assert (pd.read_csv(out / "vulnerability.csv", index_col=0).loc["judge_coherence"].iloc[0]
            == "not reached")  # constant


def test_a_corrupt_results_file_is_one_line_for_summarize_and_metrics(tmp_path, capsys):
    from scripts.metrics import main as metrics_main

    bad = tmp_path / "outputs_bad.json"
    bad.write_text('[{"output": "cut off')
    assert summarize_main([str(bad), "--out", str(tmp_path / "summary")]) == 2
    assert metrics_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err and str(bad) in err
    assert bad.read_text() == '[{"output": "cut off'  # left untouched
