"""The Ed25519 reference, measured beside each timed figure.

Every target of `make bench` is a ratio to ``ed25519_verify_per_s`` (PyNaCl, one core) of the same run.
On a shared machine that rate moves by a third within minutes (10,294 to 14,756/s in one session of
2026-11-30), so a reference taken once at the start of a ten-minute run can be in another phase than the
figure divided by it, and the same code passed a target in one run and missed it in the next.
``Reference`` measures the rate again just before and just after each timed section, and that section's
ratio is to the mean of the two. Every sample is reported, in order and labelled, with the spread; the
first sample stays ``ed25519_verify_per_s`` and each ratio to it is reported too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench import micro

# A sample taken less than this many seconds ago (the previous section's "after") is the next section's
# "before": the two would measure the same moment.
REUSE_S = 2.0


class Reference:
    """Ed25519 verifications per second on one core, sampled around each timed section."""

    def __init__(self, log: Callable[[str], None], measure: Callable[[], float] = micro.ed25519_verify_per_s) -> None:
        self._log = log
        self._measure = measure
        self.samples: list[dict[str, Any]] = []
        self.sections: dict[str, dict[str, float]] = {}
        self._last_at = float("-inf")

    @property
    def first(self) -> float:
        """The run's first sample (``ed25519_verify_per_s``); the run takes it before anything else."""
        return float(self.samples[0]["per_s"])

    def sample(self, label: str) -> float:
        value = self._measure()
        self._last_at = time.monotonic()
        self.samples.append({"label": label, "per_s": value})
        self._log(f"  Ed25519 reference ({label}): {value:.0f}/s")
        return value

    @contextmanager
    def around(self, section: str) -> Iterator[None]:
        """Time ``section`` between two samples; ``of(section)`` is then their mean."""
        if self.samples and time.monotonic() - self._last_at < REUSE_S:
            before = float(self.samples[-1]["per_s"])
        else:
            before = self.sample(f"before {section}")
        yield
        after = self.sample(f"after {section}")
        self.sections[section] = {"before": before, "after": after, "per_s": round((before + after) / 2, 1)}

    def of(self, section: str) -> float:
        return self.sections[section]["per_s"]

    def ratio(self, figure: float | None, section: str, digits: int = 3) -> float | None:
        """``figure`` over the reference measured around ``section``."""
        return None if not figure else round(figure / self.of(section), digits)

    def ratio_to_first(self, figure: float | None, digits: int = 3) -> float | None:
        return None if not figure else round(figure / self.first, digits)

    def report(self) -> dict[str, Any]:
        values = [float(s["per_s"]) for s in self.samples]
        return {
            "what": "PyNaCl verify on one core, sampled before and after each timed section; each target's "
            "ratio is to the mean of its section's two samples",
            "samples": self.samples,
            "sections": self.sections,
            "spread": round(max(values) / min(values), 3) if values else None,
        }
