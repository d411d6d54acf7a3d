"""The Hub check of preflight against a real local HTTP server that answers like the Hub API (no mocks)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from degrader.run.preflight import PreflightError, check_hub_access, check_model

GOOD, EXPIRED = "hf_good_token_never_printed", "hf_expired_token_never_printed"


class FakeHub(BaseHTTPRequestHandler):
    """/api/models/org/NAME and /org/NAME/resolve/main/config.json, answered by NAME and the bearer token."""

    seen_tokens: list[str] = []

    def do_GET(self):
        self._answer(body=True)

    def do_HEAD(self):
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        if not (self.path.startswith("/api/models/org/") or self.path.startswith("/org/")):
            return self._send(404, {}, body)  # other calls of the client (huggingface_hub asks for more than models)
        FakeHub.seen_tokens.append(token)
        name = self.path.split("?")[0].removeprefix("/api/models/").strip("/").split("/")[1]
        if token == EXPIRED:
            return self._send(401, {"X-Error-Message": "Invalid credentials in Authorization header"}, body)
        if name == "missing":
            return self._send(404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, body)
        if name == "forbidden":
            return self._send(403, {"X-Error-Message": "Forbidden"}, body)
        if self.path.startswith("/api/models/"):
            info = {"id": f"org/{name}", "modelId": f"org/{name}", "private": False, "sha": "0" * 40,
                    "gated": "manual" if name.startswith("gated") else False}
            return self._send(200, {}, body, json.dumps(info).encode())
        if name == "gated-no-access":  # the file of a gated model whose licence the token's account did not accept
            return self._send(403, {"X-Error-Code": "GatedRepo", "X-Error-Message": "Access restricted"}, body)
        return self._send(200, {"ETag": '"abc"', "X-Repo-Commit": "0" * 40}, body, b"{}")

    def _send(self, status: int, headers: dict, body: bool, content: bytes = b"{}") -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", "Content-Length": str(len(content)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(content)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def hub(monkeypatch):
    """A local Hub on a free port; HF_ENDPOINT points at it, HF_TOKEN holds the good token."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", GOOD)
    FakeHub.seen_tokens = []
    yield endpoint
    server.shutdown()
    server.server_close()


def test_a_model_the_token_may_load_passes(hub):
    check_model("org/open", dry_run=False)  # through HF_ENDPOINT, read at call time
    check_hub_access("org/gated-ok", endpoint=hub)
    assert FakeHub.seen_tokens and set(FakeHub.seen_tokens) == {GOOD}  # the token went to the Hub, over real HTTP


def test_an_expired_token_is_one_line_without_the_token(hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", EXPIRED)
    with pytest.raises(PreflightError) as refused:
        check_model("org/open", dry_run=False)
    assert str(refused.value) == "HF_TOKEN is invalid or expired: create a token at https://huggingface.co/settings/tokens"
    assert EXPIRED not in str(refused.value)


@pytest.mark.parametrize("model", ["org/gated-no-access", "org/forbidden"])
def test_a_token_without_access_says_where_to_accept_the_licence(hub, model):
    with pytest.raises(PreflightError, match=f"^your token has no access to {model}: accept its licence at "
                                             f"https://huggingface.co/{model}$") as refused:
        check_hub_access(model, endpoint=hub)
    assert GOOD not in str(refused.value)


def test_an_unknown_model_is_named(hub):
    with pytest.raises(PreflightError, match="^no model org/missing on the Hub: check --model"):
        check_model("org/missing", dry_run=False)


def test_a_hub_that_does_not_answer_in_time_only_warns(monkeypatch, caplog):
    import socket

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        check_hub_access("org/open", endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
    assert "could not ask the Hugging Face Hub about org/open" in caplog.text
