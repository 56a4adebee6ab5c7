"""How long to wait before trying again: capped exponential backoff with jitter.

One policy for every retry the gateway makes itself — InfluxDB writes, webhook
notifications, unanswered device commands, the ingest connection to the broker.
(The link's broker connection is retried by paho, with its own
``reconnect_delay_set``.)
"""

from __future__ import annotations

import random
from collections.abc import Callable

# Past this many doublings every ceiling is the cap; stopping the exponent here keeps a
# long outage (thousands of failures) from overflowing a float.
_MAX_EXPONENT = 62


class Backoff:
    """Capped exponential backoff with jitter.

    Retry ``n`` (0 for the first) waits at most ``ceiling(n) = min(cap, base * 2**n)``
    and at least ``ceiling(n) * (1 - jitter)``, drawn uniformly in between. ``jitter``
    0 waits exactly the ceiling; the default 0.5 waits at least half of it, so waits
    still grow with each failure while clients that failed together spread out.

    :meth:`delay` is stateless, for callers that count their own attempts;
    :meth:`next` and :meth:`reset` count for callers that do not.
    """

    __slots__ = ("_rand", "attempt", "base", "cap", "jitter")

    def __init__(
        self,
        base: float = 0.5,
        cap: float = 30.0,
        jitter: float = 0.5,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, not {jitter}")
        self.base, self.cap, self.jitter = base, cap, jitter
        self._rand = rand  # [0, 1); injectable so tests can pin the draw
        self.attempt = 0

    def ceiling(self, attempt: int) -> float:
        """The longest wait before retry ``attempt``."""
        return min(self.cap, self.base * 2.0 ** min(attempt, _MAX_EXPONENT))

    def delay(self, attempt: int) -> float:
        """A wait before retry ``attempt``, in ``[ceiling * (1 - jitter), ceiling]``."""
        ceiling = self.ceiling(attempt)
        return ceiling - ceiling * self.jitter * self._rand()

    def next(self) -> float:
        """The wait before the next retry; each call counts one more failure."""
        delay = self.delay(self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """An attempt succeeded: the next failure waits the shortest time again."""
        self.attempt = 0
