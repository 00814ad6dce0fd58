"""Rate limits: a token bucket per authenticated key id and per client address.

Buckets live in the worker process: with ``serve --workers N`` each worker keeps its own, so a key
gets between the configured rate (all its requests reach one worker) and N times it (spread evenly);
set ``SHULIAN_RATE_*`` to the per-worker share you want. A 429 says how long until a token is back.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from ledger.errors import LedgerError

MAX_BUCKETS = 100_000  # the least recently used bucket is dropped beyond this (it would be full by then)


class RateLimited(LedgerError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenBuckets:
    """Buckets of ``burst`` tokens refilled at ``rate`` per second, one per name; thread-safe."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, name: str, *, peek: bool = False) -> float:
        """Take one token for ``name``: 0.0 if there was one, else the seconds until there is.

        With ``peek`` nothing is taken: only whether a token is there.
        """
        if self.rate <= 0:
            return 0.0
        with self._lock:
            at = self._clock()
            tokens, then = self._buckets.pop(name, (float(self.burst), at))
            tokens = min(float(self.burst), tokens + (at - then) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 0.0 if peek else 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[name] = (tokens, at)
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
            return wait


class RateLimits:
    """The per-key and per-address buckets of one worker."""

    def __init__(self, key_rate: float, key_burst: int, ip_rate: float, ip_burst: int) -> None:
        self.keys = TokenBuckets(key_rate, key_burst)
        self.addresses = TokenBuckets(ip_rate, ip_burst)

    def charge_key(self, key_id: str) -> None:
        """Count a verified request of ``key_id``; ``RateLimited`` when its bucket is empty."""
        wait = self.keys.take(key_id)
        if wait:
            raise RateLimited(
                f"key {key_id} is over its limit of {self.keys.rate:g} requests per second", math.ceil(wait)
            )

    def charge_address(self, address: str, *, peek: bool = False) -> None:
        """Count an unauthenticated request from ``address`` (with ``peek``: only check one would pass)."""
        wait = self.addresses.take(address, peek=peek)
        if wait:
            raise RateLimited(
                f"{address} is over its limit of {self.addresses.rate:g} requests per second", math.ceil(wait)
            )
