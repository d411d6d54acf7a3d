import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from degrader.run.store import (
    CorruptOutputError,
    OutputLockedError,
    ResultStore,
    closed_cleanly,
    kept_aside,
    read_records,
)
from tests.conftest import ROOT


def key(record: dict) -> str:
    return str(record["i"])


def test_deduplicates_flushes_every_20_and_compacts(tmp_path):
    path = tmp_path / "out.json"
    store = ResultStore(path, key, flush_every=20)
    assert store.add([{"i": i} for i in range(19)]) == 19
    assert not store.journal.exists() or store.journal.read_text() == ""
    assert store.add([{"i": 18}, {"i": 19}]) == 1  # the duplicate is dropped, the 20th triggers a flush
    assert len(store.journal.read_text().splitlines()) == 20
    store.close()
    assert [r["i"] for r in json.loads(path.read_text())] == list(range(20))
    assert not store.journal.exists()


def test_closed_cleanly_is_a_clean_close_and_nothing_else(tmp_path):
    """What lets a resumed sweep skip a complete output: the file there, no journal, no interrupted rewrite."""
    path = tmp_path / "out.json"
    assert not closed_cleanly(path)  # no file yet
    store = ResultStore(path, key, flush_every=1)
    store.add([{"i": 0}])
    assert not closed_cleanly(path)  # open, with a journal
    store.close()
    assert closed_cleanly(path)
    temporary = tmp_path / ".out.json.4242.tmp"
    temporary.write_text("[")
    assert not closed_cleanly(path)  # a rewrite was interrupted: the next writer removes it
    ResultStore(path, key).close()
    assert not temporary.exists() and closed_cleanly(path)


def test_resume_merges_output_and_journal(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps([{"i": 0}, {"i": 1}]))
    (tmp_path / "out.json.journal").write_text('{"i": 1}\n{"i": 2}\n{"i": 3')  # last line cut by a crash
    store = ResultStore(path, key)
    assert store.keys == {"0", "1", "2"}
    assert [r["i"] for r in json.loads(path.read_text())] == [0, 1, 2]  # compacted on open
    store.close()


def test_second_store_on_the_same_output_is_refused(tmp_path):
    first = ResultStore(tmp_path / "out.json", key)
    with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}"):
        ResultStore(tmp_path / "out.json", key)
    first.close()
    ResultStore(tmp_path / "out.json", key).close()


@pytest.mark.parametrize("content", ['[{"i": 0}, {"i"', '{"i": 0}', "[1, 2]", "\xff\xfe"])
def test_corrupt_output_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "out.json"
    path.write_bytes(content.encode("utf-8", "surrogateescape") if content != "\xff\xfe" else b"\xff\xfe")
    before = path.read_bytes()
    with pytest.raises(CorruptOutputError, match="left untouched"):
        ResultStore(path, key)
    assert path.read_bytes() == before


def test_a_journal_that_is_not_utf8_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "out.json"
    (tmp_path / "out.json.journal").write_bytes(b'{"i": "\xff"}\n')
    with pytest.raises(CorruptOutputError, match="cannot be read as UTF-8 .* left untouched"):
        ResultStore(path, key)
    assert (tmp_path / "out.json.journal").read_bytes() == b'{"i": "\xff"}\n' and not path.exists()


@pytest.mark.parametrize("line", ["3", "[1, 2]", '"text"'])
def test_a_journal_line_that_is_not_a_record_is_refused_and_left_untouched(tmp_path, line):
    path = tmp_path / "out.json"
    path.write_text(json.dumps([{"i": 0}]))
    (tmp_path / "out.json.journal").write_text(f'{{"i": 1}}\n{line}\n')
    before = {name: (tmp_path / name).read_bytes() for name in ("out.json", "out.json.journal")}
    with pytest.raises(CorruptOutputError, match="not a record .* left untouched"):
        ResultStore(path, key)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before


def test_force_moves_the_old_output_aside(tmp_path):
    path = tmp_path / "out.json"
    path.write_text(json.dumps([{"i": 0}]))
    store = ResultStore(path, key, force=True)
    assert store.keys == set() and len(store.moved_aside) == 1
    assert json.loads(store.moved_aside[0].read_text()) == [{"i": 0}]
    assert kept_aside(store.moved_aside[0].name.removesuffix(".json"))  # what the run comparison leaves out
    store.close()


WRITER_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from degrader.run.store import ResultStore
    store = ResultStore(sys.argv[1], lambda r: str(r["i"]), flush_every=20, compact_every_s=0.0)
    i = len(store.records)
    while True:
        store.add([{{"i": i, "text": "x" * 2000}}])
        i += 1
        if not store.pending:
            print(i, flush=True)  # every record below i is flushed
""")


def test_sigkill_at_any_instant_keeps_valid_json_and_every_flushed_record(tmp_path):
    path = tmp_path / "out.json"
    script = WRITER_SCRIPT.format(root=str(ROOT))
    for delay in (0.3, 0.45, 0.6, 0.75, 0.9):
        process = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        acknowledged = [int(line) for line in process.communicate()[0].split()]
        if path.exists():
            json.loads(path.read_text())  # never truncated
        kept = {r["i"] for r in read_records(path)}
        assert set(range(max(acknowledged, default=0))) <= kept
    assert len(kept) > 100
