"""The terminal progress bar: records done / total, tokens per second, ETA."""

from __future__ import annotations

import sys
import time

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
