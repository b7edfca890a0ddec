"""What a running collection is doing, from its progress events, as one line of text.

`FleetProgress` is a `Progress` callback (host, step, state) that keeps the run's
phase, the hosts done of total, an ETA, and the slowest host still working with
the step it is on, so a user sees what the run waits for:

    collecting: 61/64 hosts done, 2m10s elapsed, ETA 40s; slowest: gpu17 gpu/nvidia-smi-q.txt (1m02s)
"""

from __future__ import annotations

import math
import threading
import time
from typing import Callable


def duration(seconds: float) -> str:
    """`45s`, `2m05s`, `1h02m`."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class FleetProgress:
    """Progress state of one collection of `total` hosts (thread-safe: events come from workers)."""

    def __init__(self, total: int, clock: Callable[[], float] = time.monotonic):
        self.total = total
        self.clock = clock
        self.t0 = clock()
        self.phase = "connecting"
        self.done: dict[str, tuple[str, float]] = {}       # host -> (outcome, seconds it took)
        self.started: dict[str, float] = {}
        self.step: dict[str, tuple[str, float]] = {}       # host -> (step it is on, since)
        self._lock = threading.Lock()

    def __call__(self, host: str, step: str, state: str) -> None:
        now = self.clock()
        with self._lock:
            if not host:
                if step == "phase":
                    self.phase = state
                return
            self.started.setdefault(host, now)
            if step == "done":
                self.done[host] = (state, now - self.started[host])
                self.step.pop(host, None)
            elif state == "start":
                self.step[host] = (step, now)
            elif self.step.get(host, ("",))[0] == step:     # that step ended
                del self.step[host]

    def eta_s(self) -> float | None:
        """Seconds until every host is done, from how long the finished ones took; None before any."""
        with self._lock:
            if not self.done:
                return None
            now = self.clock()
            mean = sum(s for _, s in self.done.values()) / len(self.done)
            busy = [h for h in self.started if h not in self.done]
            queued = max(0, self.total - len(self.started))
            left_busy = max((mean - (now - self.started[h]) for h in busy), default=0.0)
            waves = math.ceil(queued / max(1, len(busy))) if queued else 0
            return max(0.0, left_busy) + waves * mean

    def slowest(self) -> tuple[str, str, float] | None:
        """(host, step, seconds on it) of the host whose current step has run longest."""
        with self._lock:
            now = self.clock()
            busy = [(h, s, now - t) for h, (s, t) in self.step.items() if h not in self.done]
        return max(busy, key=lambda x: x[2]) if busy else None

    def line(self) -> str:
        eta = self.eta_s()
        text = (f"{self.phase}: {len(self.done)}/{self.total} hosts done, {duration(self.clock() - self.t0)} "
                f"elapsed, ETA {duration(eta) if eta is not None else '?'}")
        slow = self.slowest()
        if slow is not None:
            text += f"; slowest: {slow[0]} {slow[1]} ({duration(slow[2])})"
        return text

    def host_line(self, host: str) -> str:
        outcome, secs = self.done.get(host, ("?", 0.0))
        return f"{host} done: {outcome} in {duration(secs)} ({len(self.done)}/{self.total} hosts)"
