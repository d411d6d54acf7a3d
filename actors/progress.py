"""The terminal progress bar (records done / total, tokens per second, ETA) and the timings of a variant."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

from tqdm import tqdm


class Progress:
    """A tqdm bar over records, with the generation rate in tokens per second."""

    def __init__(self, total: int, done: int):
        self.bar = tqdm(total=total, initial=done, unit="rec", file=sys.stderr, mininterval=1.0,
                        dynamic_ncols=True, desc="records")
        self.started = time.monotonic()
        self.tokens = 0

    def update(self, done: int) -> None:
        """Move the bar to `done` records."""
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def add_tokens(self, tokens: int) -> None:
        """Count tokens of a finished unit into the rate."""
        self.tokens += tokens
        rate = self.tokens / max(time.monotonic() - self.started, 1e-9)
        self.bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)

    def close(self) -> None:
        """Leave the final bar on screen."""
        self.bar.close()


@dataclass
class VariantTimings:
    """Where the time to a variant's results goes, logged as one `timings {json}` line (issue 16).

    Instants are time.monotonic(); `launch_started` is the top of scripts/launch.py (or the driver's start).
    """

    variant: str
    launch_started: float
    ray_start_s: float = 0.0  # launch start -> Ray up, the driver's modules imported (first variant, else 0)
    load_s: float = 0.0  # actor start + model load (the variant that started the actors, else 0)
    warm_up_s: float = 0.0  # the slowest actor's warm-up (an actor starts generating when its own is done)
    ahead_s: float = 0.0  # the longest an actor compiled later groups' steps before its warm-up (compile_ahead),
    # of the warm-ups done within the variant (one that ends later is in its log line only)
    started: float = field(default_factory=time.monotonic)
    first_record: float | None = None  # when the writer first held a record of this variant's run
    generation_started: float | None = None  # the first unit handed out
    generation_ended: float | None = None  # the last unit done
    initial_records: int = 0  # records of the output before this run

    def records_seen(self, count: int) -> None:
        """The writer's record count, as the driver polls it: the first new record stops the first-record clock."""
        if self.first_record is None and count > self.initial_records:
            self.first_record = time.monotonic()

    def generation_start(self) -> None:
        """A unit was handed out (only the first counts)."""
        if self.generation_started is None:
            self.generation_started = time.monotonic()

    def line(self) -> str:
        """The JSON of the `timings` log line (seconds, rounded to ms; null for what did not happen)."""
        def span(start: float | None, end: float | None) -> float | None:
            return None if start is None or end is None else round(end - start, 3)

        return json.dumps({"variant": self.variant, "ray_start_s": round(self.ray_start_s, 3),
                           "load_s": round(self.load_s, 3), "warm_up_s": round(self.warm_up_s, 3),
                           "ahead_s": round(self.ahead_s, 3),
                           "first_record_s": span(self.launch_started, self.first_record),
                           "generation_s": span(self.generation_started, self.generation_ended),
                           "variant_s": span(self.started, time.monotonic())})
