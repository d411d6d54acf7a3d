"""The local LLM judge on the project's own Ray actors: ModelActors holding the undamaged judge model.

One ModelActor per GPU (or one on the CPU) loads the judge model as a run would (same loader, same
static compiled decode path) and answers batches of judge prompts greedily through
`ModelActor.generate_texts`; nothing is degraded. Batches go out one per actor and are taken back
as they finish (`ray.wait`); the replies go back to the caller, the only writer of the judged file.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import ray

from actors.fleet import local_pin
from actors.logs import LogSink
from actors.model_actor import ModelActor
from configs.experiments import ExperimentConfig, get_config
from degrader.models import check_spec, model_name
from degrader.run.options import LaunchOptions
from degrader.run.worker import WARM_UP_STEPS

logger = logging.getLogger(__name__)
MAX_BATCH_FAILURES = 3
# prompts per actor call, in decode batches: a call splits its prompts by token length, so a call of one
# batch would leave a partly filled (padded) batch per length it straddles
BATCHES_PER_CALL = 4
SINK_NAME = "LogSink:judge"  # the ModelActors look their log sink up by name


def judge_config(spec: str, max_new_tokens: int, batch_size: int) -> ExperimentConfig:
    """A config that only loads `spec`: greedy, one repetition, no rep-batching; its lesion never runs."""
    return get_config("dreams_it").replace(model_name=spec, max_prompts=1, n_rep=1, units_per_batch=1, do_sample=False,
                                           max_new_tokens=max_new_tokens, max_batch_size=batch_size,
                                           name_suffix="judge")


class LocalJudge:
    """A judge backend over ModelActors (Ray must be initialised): start, warm up, complete, close."""

    def __init__(self, spec: str, gpus: int = 0, max_new_tokens: int = 160, batch_size: int = 64,
                 log_path: Path | None = None, log_level: str = "INFO"):
        check_spec(spec)
        self.spec, self.max_new_tokens, self.batch_size = spec, max_new_tokens, batch_size
        self.options = LaunchOptions(gpus=gpus, log_path=log_path, log_level=log_level)
        self.config = judge_config(spec, max_new_tokens, batch_size)
        self.actors: list = []
        self.sink = None
        self.description: dict = {}

    def start(self) -> dict:
        """Start one ModelActor per GPU (one on the CPU) and load the model; returns its description."""
        log_path = self.options.log_path
        self.sink = LogSink.options(name=SINK_NAME, scheduling_strategy=local_pin()).remote(
            str(log_path) if log_path else None)
        names = [f"JudgeActor:{self.options.actor_name(i).split(':')[1]}" for i in range(self.options.n_actors)]
        self.actors = [ModelActor.options(name=name, scheduling_strategy="SPREAD", **self.options.actor_resources())
                       .remote(self.config, name, SINK_NAME, self.options.log_level) for name in names]
        descriptions = ray.get([actor.load.remote() for actor in self.actors])
        self.description = descriptions[0]
        logger.info("judge %s loaded on %d actors: %s, %s", self.spec, len(self.actors),
                    self.description["architecture"], self.description["dtype"])
        return self.description

    def warm_up(self, prompts: list[str]) -> float:
        """Compile the decode step for the prompt lengths of `prompts` on every actor; returns seconds."""
        started = time.perf_counter()
        ray.get([actor.generate_texts.remote(prompts, self.max_new_tokens, WARM_UP_STEPS) for actor in self.actors])
        return time.perf_counter() - started

    def identity(self) -> dict:
        """What is stored with every judgment."""
        return {"judge": f"local:{self.spec}", "judge_backend": "local", "judge_requested_model": self.spec,
                "judge_temperature": 0.0, "judge_max_new_tokens": self.max_new_tokens,
                "judge_dtype": self.description.get("dtype")}

    def complete(self, prompts: list[str]) -> Iterator[tuple[int, dict | Exception]]:
        """Replies as batches finish; prompts of similar length share a batch (less padding).

        A reply is the fields of `analysis.judge.backends.Reply` as a dict: actors/ does not import analysis/."""
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        size = self.batch_size * BATCHES_PER_CALL
        queue = deque(order[start: start + size] for start in range(0, len(order), size))
        # two calls per actor: the next batch waits in the actor's queue while the driver stores the last one
        in_flight, idle, failures = {}, list(self.actors) * 2, {}
        while queue or in_flight:
            while idle and queue:
                actor, batch = idle.pop(), queue.popleft()
                ref = actor.generate_texts.remote([prompts[i] for i in batch], self.max_new_tokens)
                in_flight[ref] = (actor, batch)
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            actor, batch = in_flight.pop(ready[0])
            idle.append(actor)  # a dead actor is restarted by Ray and reloads on its next call
            try:
                replies = ray.get(ready[0])
            except ray.exceptions.RayError as error:
                yield from self._failed(batch, error, queue, failures)
                continue
            for index, reply in zip(batch, replies, strict=True):
                yield index, {"text": reply["text"], "model": model_name(self.spec), "revision": self._revision(),
                              "tokens": reply["tokens"]}

    def _failed(self, batch: list[int], error: Exception, queue: deque, failures: dict):
        """Requeue a failed batch, or give up on its prompts after MAX_BATCH_FAILURES attempts."""
        key = tuple(batch)
        failures[key] = failures.get(key, 0) + 1
        logger.warning("judge batch of %d failed (%s: %s), attempt %d of %d", len(batch), type(error).__name__,
                       str(error).splitlines()[0][:200], failures[key], MAX_BATCH_FAILURES)
        if failures[key] < MAX_BATCH_FAILURES:
            queue.append(batch)
            return
        for index in batch:
            yield index, error

    def _revision(self) -> str | None:
        """The weights' revision (a Hub commit), or how random weights were made."""
        return self.description.get("revision") or self.description.get("weights")

    def close(self) -> None:
        """Stop the actors and the log sink (GPUs and actor names are freed)."""
        for actor in [*self.actors, *([self.sink] if self.sink else [])]:
            ray.kill(actor, no_restart=True)
        self.actors, self.sink = [], None
