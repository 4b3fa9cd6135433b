"""Per-process limits for the websocket: connections per IP, events per second per tab and per user.

Token buckets: a tab may send `events_per_second` on average with bursts of 5 seconds' worth; all tabs of
one user (or one signed-out IP) together twice that. An event over the limit waits for its turn (the
socket's frames queue behind it, so the sender is slowed, not its neighbours); one that would wait longer
than MAX_WAIT is dropped, and a tab that keeps flooding is disconnected.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

MAX_WAIT = 2.0  # seconds an event may be held back before it is dropped instead
DROPS_BEFORE_DISCONNECT = 50
OPEN_WINDOW = 60.0  # connections opened per IP are counted over this many seconds
SWEEP_EVERY = 10.0  # how often idle addresses and owners are forgotten


@dataclass
class Bucket:
    """A token bucket: `rate` per second, at most `burst` saved up."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def delay(self, now: float) -> float:
        """Seconds until one more event may go (0: now), without taking it."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        """Spend one event (the balance may go negative: later events wait longer)."""
        self.tokens -= 1


class RateGate:
    """The websocket's limits in one worker; 0 in a setting means no limit."""

    def __init__(self, *, events_per_second: float, connections_per_ip: int) -> None:
        self.events_per_second = events_per_second
        self.connections_per_ip = connections_per_ip
        self._tabs: dict[str, Bucket] = {}
        self._owners: dict[str, Bucket] = {}
        self._drops: dict[str, int] = {}
        self._open: dict[str, int] = {}
        self._opened: dict[str, deque[float]] = {}
        self._swept = 0.0

    # ---- connections -------------------------------------------------------------------------------
    def open_connection(self, ip: str) -> bool:
        """Count a new connection from `ip`; False (and nothing counted) when over a limit."""
        if not self.connections_per_ip:
            self._open[ip] = self._open.get(ip, 0) + 1
            return True
        now = time.monotonic()
        opened = self._opened.setdefault(ip, deque())
        while opened and now - opened[0] > OPEN_WINDOW:
            opened.popleft()
        if self._open.get(ip, 0) >= self.connections_per_ip or len(opened) >= 3 * self.connections_per_ip:
            return False
        opened.append(now)
        self._open[ip] = self._open.get(ip, 0) + 1
        return True

    def close_connection(self, ip: str) -> None:
        """A connection from `ip` ended."""
        left = self._open.get(ip, 0) - 1
        if left > 0:
            self._open[ip] = left
        else:
            self._open.pop(ip, None)
        self._sweep(time.monotonic())

    def _sweep(self, now: float) -> None:
        """Forget addresses with nothing open and nothing opened in the window, and idle owners (bounded memory)."""
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        for ip, opened in list(self._opened.items()):
            while opened and now - opened[0] > OPEN_WINDOW:
                opened.popleft()
            if not opened and ip not in self._open:
                del self._opened[ip]
        # A full bucket (refilled for burst/rate seconds) is the same as no bucket: drop those.
        self._owners = {k: b for k, b in self._owners.items() if now - b.at < b.burst / b.rate}

    def connections(self, ip: str) -> int:
        """Open connections from `ip` in this worker."""
        return self._open.get(ip, 0)

    # ---- events ------------------------------------------------------------------------------------
    def event_delay(self, sid: str, owner: str) -> float | None:
        """Seconds the event must wait (0: none), or None when it is dropped."""
        if not self.events_per_second:
            return 0.0
        rate = self.events_per_second
        tab = self._tabs.get(sid) or self._tabs.setdefault(sid, Bucket(rate, 5 * rate))
        user = self._owners.get(owner) or self._owners.setdefault(owner, Bucket(2 * rate, 10 * rate))
        now = time.monotonic()
        wait = max(tab.delay(now), user.delay(now))
        if wait > MAX_WAIT:
            return None
        tab.take()
        user.take()
        return wait

    def note_dropped(self, sid: str) -> bool:
        """Count a dropped event; True when the tab should be disconnected."""
        self._drops[sid] = self._drops.get(sid, 0) + 1
        return self._drops[sid] == DROPS_BEFORE_DISCONNECT

    def forget(self, sid: str) -> None:
        """Drop a closed tab's bucket (owners' buckets are swept once full again)."""
        self._tabs.pop(sid, None)
        self._drops.pop(sid, None)
