"""The LLM judge: prompt files, reply validation against fooling replies, the OpenAI-compatible backend
against a real local chat-completions server (429 then success, malformed replies, resume, the key never
stored or logged), and the judged frame merged with the computed metrics."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from analysis.judge import (
    FAMILIES,
    judged_frame,
    judged_path,
    merge_judged,
    select_families,
)
from analysis.judge.backends import OpenAIJudge, Reply, as_reply, public_url
from analysis.judge.families import PROMPTS_DIR, ReplyError
from analysis.judge.run import judge_file, pending_requests
from analysis.judge.store import runs_path
from analysis.registry import METRICS
from degrader.run.keys import record_key
from degrader.run.store import read_records

SAMPLES = Path(__file__).resolve().parents[2] / "results" / "samples"
API_KEY = "sk-test-SECRET-4f1c9d0e"
SERVED_MODEL = "judge-test-model-2026-11-01"


# ---------------------------------------------------------------- prompt files and reply validation

def test_prompt_files_define_the_thesis_families():
    assert set(FAMILIES) == {"narrative", "affect", "big_five", "iq", "cookie_theft"}
    for family in FAMILIES.values():
        assert family.sha256 == hashlib.sha256(family.path.read_bytes()).hexdigest()
        assert family.path.parent == PROMPTS_DIR
        for field in family.fields:
            assert f'"{field.name}"' in family.template  # the reply format lists every rubric field
    narrative = {f.name: f for f in FAMILIES["narrative"].fields}
    assert (narrative["coherence"].low, narrative["coherence"].high) == (0, 5)
    assert narrative["derailment"].higher_is_healthier is False
    assert FAMILIES["iq"].requires == ("answer_key",)


def test_judged_fields_are_registered_as_judge_metrics_that_read_nothing_from_a_record():
    judged = {name: m for name, m in METRICS.items() if m.family == "judge"}
    assert {"judge_coherence", "judge_valence", "judge_openness", "judge_answer_correct", "judge_unit_sink",
            "judge_content_units"} <= set(judged)
    assert judged["judge_content_units"].high == 14
    record = read_records(next(SAMPLES.glob("*dreams.json")))[0]
    assert all(metric.compute(record) is None for metric in judged.values())


# (family, reply, hand label: the fields, or None for unparsed). Fooling replies: an echo of the format
# line, prose around the object, two objects, wrong types that Python would coerce, ranges, extra keys.
VALID_NARRATIVE = {"coherence": 4, "derailment": 1, "tangentiality": 0, "grammar": 5}
ECHO = next(line for line in FAMILIES["narrative"].template.splitlines() if line.startswith('{"'))
FIXTURES = [
    ("narrative", json.dumps(VALID_NARRATIVE), VALID_NARRATIVE),
    ("narrative", "  " + json.dumps(VALID_NARRATIVE) + "\n", VALID_NARRATIVE),
    ("narrative", "```json\n" + json.dumps(VALID_NARRATIVE) + "\n```", VALID_NARRATIVE),
    ("narrative", "```\n" + json.dumps(VALID_NARRATIVE) + "\n```", VALID_NARRATIVE),
    ("narrative", json.dumps(dict(reversed(list(VALID_NARRATIVE.items())))), VALID_NARRATIVE),
    ("iq", '{"answer_correct": true, "knows_method": false, "applies_method": false}',
     {"answer_correct": True, "knows_method": False, "applies_method": False}),
    ("narrative", ECHO, None),  # the prompt's format line echoed back
    ("narrative", "Here is my rating: " + json.dumps(VALID_NARRATIVE), None),
    ("narrative", json.dumps(VALID_NARRATIVE) + " I hope this helps.", None),
    ("narrative", json.dumps(VALID_NARRATIVE) + "\n" + json.dumps(VALID_NARRATIVE), None),
    ("narrative", json.dumps({**VALID_NARRATIVE, "coherence": 6}), None),
    ("narrative", json.dumps({**VALID_NARRATIVE, "grammar": -1}), None),
    ("narrative", json.dumps({**VALID_NARRATIVE, "coherence": 3.5}), None),
    ("narrative", json.dumps({**VALID_NARRATIVE, "coherence": 4.0}), None),
    ("narrative", json.dumps({**VALID_NARRATIVE, "coherence": "4"}), None),
    ("narrative", json.dumps({**VALID_NARRATIVE, "coherence": True}), None),
    ("narrative", json.dumps({**VALID_NARRATIVE, "coherence": None}), None),
    ("narrative", json.dumps({k: v for k, v in VALID_NARRATIVE.items() if k != "grammar"}), None),
    ("narrative", json.dumps({**VALID_NARRATIVE, "comment": "coherent"}), None),
    ("narrative", json.dumps({"rating": VALID_NARRATIVE}), None),
    ("narrative", json.dumps([VALID_NARRATIVE]), None),
    ("iq", '{"answer_correct": 1, "knows_method": 0, "applies_method": 0}', None),
    ("iq", '{"answer_correct": "yes", "knows_method": "no", "applies_method": "no"}', None),
    ("iq", '{"answer_correct": "not true", "knows_method": false, "applies_method": false}', None),
    ("iq", "The answer is not correct.", None),
    ("iq", "", None),
    ("iq", "null", None),
    ("narrative", "coherence: 4, derailment: 1, tangentiality: 0, grammar: 5", None),
]


def test_reply_validation_agrees_with_hand_labels_on_valid_and_fooling_replies():
    agree = 0
    for family_name, reply, expected in FIXTURES:
        family = FAMILIES[family_name]
        try:
            got = family.parse(reply)
        except ReplyError as error:
            got = None
            assert str(error)  # the reason is stored with an unparsed judgment
        assert got == expected, (family_name, reply)
        assert got is None or all(type(got[k]) is type(expected[k]) for k in expected)
        agree += got == expected
    valid = sum(expected is not None for _, _, expected in FIXTURES)
    print(f"\nreply validation: {agree}/{len(FIXTURES)} agree with hand labels "
          f"({valid} valid, {len(FIXTURES) - valid} fooling or malformed)")


def test_render_shows_the_output_verbatim_and_only_where_the_family_applies():
    dream = {"prompt_group": "dreams", "prompt_text": "Describe a dream.", "output": "I paid $output and ${prompt} {x}"}
    text = FAMILIES["narrative"].render(dream)
    assert "<<<\nI paid $output and ${prompt} {x}\n>>>" in text and "Request: Describe a dream." in text
    keyed = {"prompt_group": "iq", "prompt_text": "What is 7 squared?", "answer_key": "49", "output": "49"}
    assert "Correct answer: 49" in FAMILIES["iq"].render(keyed)
    assert not FAMILIES["iq"].applies_to({**keyed, "answer_key": None})  # creativity items have no key
    assert not FAMILIES["affect"].applies_to(keyed) and FAMILIES["affect"].applies_to(dream)
    with pytest.raises(ValueError, match="unknown judge family sentiment; available: affect, big_five"):
        select_families(FAMILIES, ["narrative", "sentiment"])


# ---------------------------------------------------------------- a real chat-completions server

def scripted_reply(prompt: str) -> str:
    """The test judge: 3 for every integer, true for every boolean; malformed or fenced where the output asks."""
    format_line = next(line for line in prompt.splitlines() if line.startswith('{"'))
    names = [part.split('"')[1] for part in format_line.strip("{}").split(", ")]
    values = {name: (True if "true or false" in format_line else 3) for name in names}
    if "PLEASE-MALFORM" in prompt:
        return "Coherence: 3/5. The text is fairly coherent."
    if "PLEASE-FENCE" in prompt:
        return "```json\n" + json.dumps(values) + "\n```"
    return json.dumps(values)


class ChatServer:
    """/v1/chat/completions on 127.0.0.1:0 in a thread; the first `fail_first` requests get `fail_status`."""

    def __init__(self, fail_first: int = 0, fail_status: int = 429, retry_after: str | None = "0"):
        self.fail_left, self.fail_status, self.retry_after = fail_first, fail_status, retry_after
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep the test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                    failing = server.fail_left != 0
                    server.fail_left -= failing
                if failing:
                    headers = {"Retry-After": server.retry_after} if server.retry_after is not None else {}
                    return self._send(server.fail_status, {"error": {"message": "slow down", "type": "rate_limit"}},
                                      headers)
                content = scripted_reply(body["messages"][0]["content"])
                self._send(200, {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": SERVED_MODEL,
                                 "system_fingerprint": "fp_test",
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": content}}],
                                 "usage": {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17}})

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    """Five real sample records: two dreams (one to be answered malformed), a keyed and an unkeyed IQ item,
    a Cookie Theft description (to be answered in a code fence)."""
    dreams = read_records(next(SAMPLES.glob("*dreams.json")))[:2]
    iq = read_records(next(SAMPLES.glob("*IQ.json")))
    cookie = read_records(next(SAMPLES.glob("*cookies.json")))[0]
    dreams[1] = {**dreams[1], "output": dreams[1]["output"] + " PLEASE-MALFORM"}
    records = [*dreams, iq[0], next(r for r in iq if not r.get("answer_key")),
               {**cookie, "output": cookie["output"] + " PLEASE-FENCE"}]
    path = tmp_path / "results" / "outputs_mult_gauss_test.json"
    path.parent.mkdir()
    path.write_text(json.dumps(records))
    return path


@pytest.fixture
def restore_logging():
    """scripts/judge.py adds its log handlers to the root logger: take them off after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[len(handlers):]:
        handler.close()
    root.handlers, root.level = handlers, level


def run_cli(results: Path, logs: Path, monkeypatch, server: ChatServer, *extra: str) -> int:
    from scripts.judge import main

    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    return main([str(results), "--judge", f"openai:{SERVED_MODEL}", "--logs-dir", str(logs), "--log-level", "DEBUG",
                 *extra])


def test_openai_backend_retries_429_stores_unparsed_replies_resumes_and_never_leaks_the_key(
        results_file, tmp_path, monkeypatch, capsys, caplog, restore_logging):
    caplog.set_level(logging.DEBUG)
    with ChatServer(fail_first=1) as server:
        assert run_cli(results_file, tmp_path / "logs", monkeypatch, server) == 0
        first = len(server.requests)
        assert run_cli(results_file, tmp_path / "logs", monkeypatch, server) == 0  # resume: nothing left to judge
        assert len(server.requests) == first
    out = capsys.readouterr().out
    assert "9 judged, 0 failed" in out and "0 judged, 0 failed" in out
    assert first == 10  # 9 judgments (3 + 3 dreams, 1 keyed IQ item, 2 Cookie Theft) + the one answered 429
    assert all(r["auth"] == f"Bearer {API_KEY}" and r["temperature"] == 0 for r in server.requests)

    judged = judged_path(results_file, f"openai:{SERVED_MODEL}")
    judgments = read_records(judged)
    assert len(judgments) == 9 and judged.parent.name == "judged"
    unparsed = [j for j in judgments if j["unparsed"]]
    assert len(unparsed) == 3 and all(j["fields"] is None and "PLEASE" not in j["raw_reply"] for j in unparsed)
    assert {j["raw_reply"] for j in unparsed} == {"Coherence: 3/5. The text is fairly coherent."}
    fenced = next(j for j in judgments if j["family"] == "cookie_theft")
    assert fenced["raw_reply"].startswith("```json") and sum(fenced["fields"].values()) == 14
    for judgment in judgments:
        assert judgment["judge_model"] == SERVED_MODEL and judgment["judge_revision"] == "fp_test"
        assert judgment["prompt_sha256"] == FAMILIES[judgment["family"]].sha256
        assert judgment["judge_endpoint"] == server.url
    runs = read_records(runs_path(judged))
    assert [r["judged"] for r in runs] == [9, 0]
    assert runs[0]["parse_rates"]["narrative"] == {"judgments": 3, "parsed": 2, "parse_rate": 2 / 3}
    assert "narrative: parse rate 0.667 (2/3 stored)" in out

    logs = "".join(p.read_text() for p in (tmp_path / "logs").iterdir())
    assert "retry 1/5" in logs  # the 429 was logged and retried
    stored = "".join(p.read_text() for p in judged.parent.iterdir())
    for text in (stored, logs, caplog.text, out):
        assert API_KEY not in text
    print(f"\nopenai backend: {first} requests for 9 judgments (one 429 retried), parse rate "
          f"{sum(not j['unparsed'] for j in judgments)}/9; key found in 0 of 4 outputs")


def test_exhausted_retries_store_nothing_and_the_next_run_judges_the_pair(results_file, tmp_path):
    family = FAMILIES["iq"]
    with ChatServer(fail_first=-1, fail_status=503, retry_after=None) as server:  # always down, no Retry-After
        judge = OpenAIJudge(SERVED_MODEL, server.url, API_KEY, workers=1, max_attempts=3, backoff_s=0.01)
        summary = judge_file(results_file, judge, [family])
        assert summary["judged"] == 0 and summary["failed"] == 1 and len(server.requests) == 3
        assert read_records(judged_path(results_file, summary["judge"])) == []
    with ChatServer(fail_first=1, fail_status=400) as server:  # a client error is not retried
        judge = OpenAIJudge(SERVED_MODEL, server.url, API_KEY, workers=1, max_attempts=3, backoff_s=0.01)
        assert judge_file(results_file, judge, [family])["failed"] == 1 and len(server.requests) == 1
        assert judge_file(results_file, judge, [family])["judged"] == 1  # the pair was still missing


class FieldsBackend:
    """A backend that sends each reply as a dict of Reply's fields, as the Ray one (actors/judge_job.py) does."""

    def __init__(self, reply: dict):
        self.reply = reply

    def identity(self) -> dict:
        return {"judge": "local:fields", "judge_backend": "local"}

    def complete(self, prompts: list[str]):
        yield from ((index, self.reply) for index in range(len(prompts)))


def test_a_reply_sent_as_its_fields_is_stored_as_a_reply(results_file):
    """The local backend cannot import Reply (actors/ sits below analysis/): the run turns its dicts into one."""
    fields = {"text": '{"answer": "B", "reasoning": "x"}', "model": "served", "revision": "r1", "tokens": 7}
    summary = judge_file(results_file, FieldsBackend(fields), [FAMILIES["iq"]])
    judgment = read_records(judged_path(results_file, "local:fields"))[0]
    assert summary["judged"] == 1 and summary["failed"] == 0
    stored = {key: judgment[key] for key in ("raw_reply", "judge_model", "judge_revision", "judge_reply_tokens")}
    assert stored == {"raw_reply": fields["text"], "judge_model": "served", "judge_revision": "r1",
                      "judge_reply_tokens": 7}
    assert as_reply(fields) == Reply(**fields) and as_reply(Reply("t", "m", None)) == Reply("t", "m", None)
    with pytest.raises(ValueError, match=r"must have the fields \['model', 'revision', 'text', 'tokens'\]"):
        as_reply({"text": "t", "model": "m"})


def test_a_refused_key_stops_the_run_in_one_line_and_failures_exit_non_zero(
        results_file, tmp_path, monkeypatch, capsys, restore_logging):
    with ChatServer(fail_first=-1, fail_status=401) as server:  # a bad key: every request is refused
        assert run_cli(results_file, tmp_path / "logs", monkeypatch, server, "--workers", "1") == 1
        assert len(server.requests) <= 2  # stopped at the first refusal, not once per record
    assert "judge endpoint answered 401: the key was refused: check OPENAI_API_KEY" in caplog_text(tmp_path / "logs")
    assert "Traceback" not in capsys.readouterr().err
    with ChatServer(fail_first=-1, fail_status=503, retry_after=None) as server:  # down: retried, then failed
        assert run_cli(results_file, tmp_path / "logs", monkeypatch, server, "--max-attempts", "1") == 1
    assert "judgments failed after their retries; run the same command" in capsys.readouterr().err


def caplog_text(folder: Path) -> str:
    """Every run log written in `folder`."""
    return "".join(path.read_text() for path in folder.glob("*.log"))


def test_backoff_doubles_up_to_its_cap_without_random_state():
    judge = OpenAIJudge("m", "http://127.0.0.1:9/v1", "k", backoff_s=0.5, max_wait_s=3.0)
    assert [judge._wait(attempt, RuntimeError()) for attempt in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert public_url("https://user:pw@example.org:8443/v1?key=abc") == "https://example.org:8443/v1"
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIJudge("m", None, None)


def test_judged_frame_merges_with_the_metrics_table_and_ignores_other_prompt_versions(results_file, tmp_path):
    import analysis.metrics  # noqa: F401  (registers the computed metrics)
    from analysis.table import metrics_frame

    records = read_records(results_file)
    with ChatServer() as server:
        judge_file(results_file, OpenAIJudge(SERVED_MODEL, server.url, API_KEY), list(FAMILIES.values()))
    path = judged_path(results_file, f"openai:{SERVED_MODEL}")
    frame = judged_frame([path], FAMILIES).set_index("key")
    dream, malformed, keyed, _, cookie = (record_key(r) for r in records)
    assert len(frame) == 4
    assert frame.loc[dream, "judge_coherence"] == 3 and frame.loc[dream, "judge_narrative_parsed"] == 1
    assert frame.loc[malformed, "judge_narrative_parsed"] == 0 and frame.isna().loc[malformed, "judge_coherence"]
    assert frame.loc[keyed, "judge_answer_correct"] == 1 and frame.isna().loc[keyed, "judge_coherence"]
    assert frame.loc[cookie, "judge_content_units"] == 14

    merged = merge_judged(metrics_frame(records), judged_frame([path], FAMILIES))
    assert len(merged) == len(records) and list(merged["key"]) == [record_key(r) for r in records]
    assert merged.loc[0, "judge_coherence"] == 3 and merged.loc[0, "distinct_1"] > 0
    assert merged["judge_coherence"].isna().sum() == 3  # malformed, and the two IQ items

    edited = {name: dataclasses.replace(f, sha256="0" * 64) for name, f in FAMILIES.items()}
    assert judged_frame([path], edited).empty  # judgments of another prompt version never count
    assert len(pending_requests(records, list(edited.values()), set())) == 9  # and are judged again
