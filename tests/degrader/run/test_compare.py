"""Two runs' outputs compared record by record, on output files and journals as the results writer leaves them;
real launches compared in tests/actors/test_run.py, the script as a real process here."""

from __future__ import annotations

import subprocess
import sys

import pytest

from degrader.run.compare import compare_outputs
from tests.conftest import OUTPUT_NAME, ROOT, record, write_output


def test_hand_worked_example(tmp_path):
    # a: four records; b: the same text in another process (times, actor differ), a text that parts after
    # "I was in " (9 characters, the space counts), the same text in another batch shape, and one record only each
    # run has (b's was made with other settings: another record, not another text)
    write_output(tmp_path / "a", [record("sea", "I dreamt of waves."), record("house", "I was in a house."),
                                  record("dog", "A dog ran."), record("fire", "It burned.")])
    elsewhere = {"timestamp": "2026-11-29T09:00:00.000Z", "duration": 7.5, "actor": "ModelActor:gpu3"}
    write_output(tmp_path / "b", [record("sea", "I dreamt of waves.", **elsewhere),
                                  record("house", "I was in the garden."),
                                  record("dog", "A dog ran.", batch_size_effective=38, reps_in_batch=43),
                                  record("fire", "It burned.", settings="def456")])
    [comparison] = compare_outputs(tmp_path / "a", tmp_path / "b")
    assert (comparison.matched, comparison.outputs_differ, comparison.shapes_differ) == (3, 1, 1)
    assert (comparison.shapes_and_outputs_differ, comparison.only_first, comparison.only_second) == (0, 1, 1)
    assert comparison.divergence == (9,) and not comparison.identical
    assert "outputs differ in 1 (batch shapes differ in 1, both in 0)" in comparison.line()
    assert "only in the first run 1, only in the second 1" in comparison.line()
    assert "part after 9-9 characters" in comparison.line()


def test_echoes_and_whitespace_are_different_texts(tmp_path):
    write_output(tmp_path / "a", [record("sea", "waves"), record("house", "a house"), record("dog", "")])
    write_output(tmp_path / "b", [record("sea", "waves "), record("house", "a house a house"), record("dog", " ")])
    [comparison] = compare_outputs(tmp_path / "a", tmp_path / "b")
    assert comparison.outputs_differ == 3 and sorted(comparison.divergence) == [0, 5, 7]


def test_a_run_in_progress_counts_its_journal(tmp_path):
    records = [record("sea", "waves"), record("house", "a house")]
    write_output(tmp_path / "a", records)
    write_output(tmp_path / "b", records[:1], journal=records[1:])
    [comparison] = compare_outputs(tmp_path / "a", tmp_path / "b")
    assert comparison.identical and comparison.matched == 2


def test_an_output_only_one_run_has_is_all_missing_from_the_other(tmp_path):
    write_output(tmp_path / "a", [record("sea", "waves"), record("house", "a house")])
    (tmp_path / "b").mkdir()
    [comparison] = compare_outputs(tmp_path / "a", tmp_path / "b")
    assert (comparison.only_first, comparison.only_second, comparison.matched) == (2, 0, 0)
    assert not comparison.identical


def test_journal_only_outputs_count_and_files_kept_aside_do_not(tmp_path):
    records = [record("sea", "waves"), record("house", "a house")]
    for run in ("a", "b"):  # both runs stopped before their first compaction: journals only
        write_output(tmp_path / run, None, journal=records)
    # what --force and the store's conflict check leave beside an output: not outputs to compare
    replaced = OUTPUT_NAME.replace(".json", ".replaced-20261128_101500.json")
    write_output(tmp_path / "a", [record("sea", "old waves")], journal=[record("dog", "a dog")], name=replaced)
    write_output(tmp_path / "b", [record("sea", "other")], name=OUTPUT_NAME.replace(".json", ".conflicts.json"))
    # a name suffix may say "replaced" (free text): without --force's time stamp it is an output like any other
    suffixed = OUTPUT_NAME.replace(".json", "_my.replaced-v2.json")
    for run in ("a", "b"):
        write_output(tmp_path / run, [record("sea", "waves")], name=suffixed)
    comparisons = compare_outputs(tmp_path / "a", tmp_path / "b")
    assert [c.name for c in comparisons] == [OUTPUT_NAME, suffixed]
    assert all(c.identical for c in comparisons) and comparisons[0].matched == 2


def test_a_repeated_key_keeps_its_first_record_as_the_store_does(tmp_path):
    write_output(tmp_path / "a", [record("sea", "waves")])
    write_output(tmp_path / "b", [record("sea", "waves")], journal=[record("sea", "WAVES")])
    [comparison] = compare_outputs(tmp_path / "a", tmp_path / "b")
    assert comparison.identical


def test_two_differing_texts_give_quartiles_within_their_range(tmp_path):
    write_output(tmp_path / "a", [record("sea", "waves"), record("dog", "a" * 100 + "b")])
    write_output(tmp_path / "b", [record("sea", "other"), record("dog", "a" * 100 + "c")])
    [comparison] = compare_outputs(tmp_path / "a", tmp_path / "b")
    assert sorted(comparison.divergence) == [0, 100]
    assert "after 0-100 characters (median 50, quartiles 25-75)" in comparison.line()


def run_script(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_runs.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_the_script_exits_like_diff(tmp_path):
    write_output(tmp_path / "a", [record("sea", "waves")])
    write_output(tmp_path / "same", [record("sea", "waves", duration=3.0)])
    write_output(tmp_path / "other", [record("sea", "wives")])
    same = run_script(tmp_path / "a", tmp_path / "same")
    assert same.returncode == 0 and "1 of 1 outputs identical" in same.stdout
    other = run_script(tmp_path / "a", tmp_path / "other")
    assert other.returncode == 1 and "outputs differ in 1" in other.stdout
    assert "0 of 1 outputs identical" in other.stdout


@pytest.mark.parametrize("bad", ["missing", "corrupt", "empty", "not a record", "not utf-8", "a number",
                                 "level not a number", "no text", "twice"])
def test_the_script_refuses_bad_input_and_leaves_files_untouched(tmp_path, bad):
    write_output(tmp_path / "a", [record("sea", "waves")])
    second = tmp_path / "b"
    second.mkdir()
    if bad == "corrupt":
        (second / OUTPUT_NAME).write_text('[{"output": "wav')
    if bad == "empty":
        (tmp_path / "a" / OUTPUT_NAME).unlink()
    if bad == "not a record":
        (second / OUTPUT_NAME).write_text('[{"output": "waves"}]')
    if bad == "not utf-8":
        (second / f"{OUTPUT_NAME}.journal").write_bytes(b'{"output": "\xff"}\n')
    if bad == "a number":  # a journal line that is JSON but not a record
        (second / f"{OUTPUT_NAME}.journal").write_text("3\n")
    if bad == "level not a number":
        write_output(second, [record("sea", "waves", level="high")])
    if bad == "no text":
        write_output(second, [record("sea", None)])
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    other = {"missing": tmp_path / "missing", "twice": tmp_path / "a" / ".." / "a"}.get(bad, second)
    result = run_script(tmp_path / "a", other)
    assert result.returncode == 2 and result.stdout == ""
    assert {"missing": "is not a folder", "corrupt": "not valid JSON", "empty": "no outputs_",
            "not a record": "is not a degrader record", "not utf-8": "cannot be read",
            "a number": "not a record (a JSON object)", "level not a number": "is not a degrader record",
            "no text": "output is NoneType, not text", "twice": "is given twice"}[bad] in result.stderr
    assert "Traceback" not in result.stderr
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before
