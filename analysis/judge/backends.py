"""Judge backends: a reply per prompt, yielded as replies finish (not in submission order).

`OpenAIJudge` talks to any OpenAI-compatible chat-completions endpoint (OpenAI's GPT-4o-mini, or a local
vLLM / llama.cpp / Ollama server). The local backend on the project's own Ray actors is
`actors.judge_job.LocalJudge`; both satisfy `JudgeBackend`. The local one yields each reply as a dict of
`Reply`'s fields (actors/ does not import analysis/), which `as_reply` turns into a `Reply`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
RETRIED_STATUS = (408, 409, 429, 500, 502, 503, 504)
# the endpoint refuses every request alike (a bad key, no access, no such model): stop at the first one
FATAL_STATUS = {401: "the key was refused: check OPENAI_API_KEY", 403: "no access: check the key's permissions",
                404: "no such model or endpoint: check the model name and OPENAI_BASE_URL"}
OPENAI_URL = "https://api.openai.com/v1"  # an empty OPENAI_BASE_URL (as env.example leaves it) means this


@dataclass(frozen=True)
class Reply:
    """A judge's answer to one prompt: its text and the model that really answered."""

    text: str
    model: str  # the model id the server reports (e.g. gpt-4o-mini-2024-07-18)
    revision: str | None  # a weights revision or the server's system fingerprint, where known
    tokens: int | None = None  # new tokens of the reply, where known


class JudgeBackend(Protocol):
    """What the judge run needs from a backend."""

    def identity(self) -> dict:
        """spec, backend, model, revision, decoding settings: stored with every judgment."""

    def complete(self, prompts: list[str]) -> Iterator[tuple[int, Reply | Mapping | Exception]]:
        """(index, reply) for each prompt as it finishes (a Reply or its fields); an Exception where every attempt
        failed."""


def as_reply(reply: Reply | Mapping) -> Reply:
    """A backend's reply as a `Reply`: a mapping must hold exactly its fields (text, model, revision, tokens)."""
    if isinstance(reply, Reply):
        return reply
    fields = {"text", "model", "revision", "tokens"}
    if set(reply) != fields:
        raise ValueError(f"a judge reply must have the fields {sorted(fields)}, got {sorted(reply)}; "
                         "the backend must send every field of analysis.judge.backends.Reply and nothing else")
    return Reply(**reply)


def openai_settings(env_file: Path | None = None) -> tuple[str | None, str | None]:
    """OPENAI_BASE_URL and OPENAI_API_KEY from the environment, else from ./.env or the repository's .env."""
    from dotenv import dotenv_values

    values = {}
    for candidate in ([env_file] if env_file else [Path(".env"), ROOT / ".env"]):
        if candidate.is_file():
            values = dotenv_values(candidate)
            break
    return (os.environ.get("OPENAI_BASE_URL") or values.get("OPENAI_BASE_URL") or None,
            os.environ.get("OPENAI_API_KEY") or values.get("OPENAI_API_KEY") or None)


def public_url(url: str | None) -> str:
    """`url` (None: OpenAI's) without user info or query (where a key could hide), for the stored judgment."""
    url = url or OPENAI_URL
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"


class OpenAIJudge:
    """Chat completions at temperature 0, a few requests at once, 429 and transient errors retried.

    Retry i waits backoff_s * 2**i seconds (capped at max_wait_s), or the server's Retry-After when it
    gives one: no jitter, so no random state at all. After max_attempts the prompt's Exception is yielded.
    """

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, workers: int = 4,
                 max_new_tokens: int = 160, max_attempts: int = 6, backoff_s: float = 1.0, max_wait_s: float = 60.0,
                 timeout_s: float = 120.0):
        from openai import OpenAI

        if not api_key:
            raise ValueError("no OpenAI API key: set OPENAI_API_KEY in the environment or in .env (see env.example); "
                             "a local server without keys takes any value, e.g. OPENAI_API_KEY=none")
        self.model, self.base_url, self.workers = model, base_url, workers
        self.max_new_tokens, self.max_attempts = max_new_tokens, max_attempts
        self.backoff_s, self.max_wait_s = backoff_s, max_wait_s
        # the client's own retries are off: ours are bounded, logged and free of random jitter
        self.client = OpenAI(base_url=base_url or OPENAI_URL, api_key=api_key, max_retries=0, timeout=timeout_s)

    def identity(self) -> dict:
        """What is stored with every judgment (never the key)."""
        return {"judge": f"openai:{self.model}", "judge_backend": "openai", "judge_endpoint": public_url(self.base_url),
                "judge_requested_model": self.model, "judge_temperature": 0.0,
                "judge_max_new_tokens": self.max_new_tokens}

    def complete(self, prompts: list[str]) -> Iterator[tuple[int, Reply | Exception]]:
        """Replies as they finish, from `workers` threads."""
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="judge")
        try:
            futures = {pool.submit(self._with_retries, prompt): index for index, prompt in enumerate(prompts)}
            for future in as_completed(futures):
                error = future.exception()
                status = getattr(error, "status_code", None)
                if status in FATAL_STATUS:  # one line for the user, not one warning per request
                    raise RuntimeError(f"judge endpoint answered {status}: {FATAL_STATUS[status]}") from None
                yield futures[future], error if error is not None else future.result()
        finally:  # Ctrl-C or an abandoned run: drop the requests not yet started rather than wait for them
            pool.shutdown(wait=True, cancel_futures=True)

    def _with_retries(self, prompt: str) -> Reply:
        import openai

        for attempt in range(self.max_attempts - 1):
            try:
                return self._ask(prompt)
            except (openai.APIConnectionError, openai.APIStatusError) as error:  # timeouts are connection errors
                status = getattr(error, "status_code", None)
                if status is not None and status not in RETRIED_STATUS:
                    raise
                wait = self._wait(attempt, error)
                logger.warning("judge request failed (%s, status %s); retry %d/%d in %.1fs", type(error).__name__,
                               status, attempt + 1, self.max_attempts - 1, wait)
                time.sleep(wait)
        return self._ask(prompt)  # the last attempt: its error goes to the caller

    def _wait(self, attempt: int, error: Exception) -> float:
        response = getattr(error, "response", None)
        retry_after = response.headers.get("retry-after") if response is not None else None
        try:
            return min(float(retry_after), self.max_wait_s)
        except (TypeError, ValueError):
            return min(self.backoff_s * 2 ** attempt, self.max_wait_s)

    def _ask(self, prompt: str) -> Reply:
        response = self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0.0,
            max_tokens=self.max_new_tokens)
        usage = getattr(response, "usage", None)
        return Reply(response.choices[0].message.content or "", response.model or self.model,
                     getattr(response, "system_fingerprint", None), usage.completion_tokens if usage else None)
