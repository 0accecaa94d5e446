"""SIGTERM/SIGINT as a graceful stop: the first signal asks the loop to stop after in-flight
entries are finished and acked; a second one, or the grace period running out, stops now."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


class GracefulStop:
    """A stop flag set by SIGTERM/SIGINT (install from the main thread)."""

    def __init__(self, grace_s: float = 10.0, event: threading.Event | None = None) -> None:
        self.event = event or threading.Event()
        self.grace_s = grace_s
        self._timer: threading.Timer | None = None

    def install(self) -> GracefulStop:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            log.warning("second %s: stopping now", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: finishing in-flight entries, then exiting", signal.Signals(signum).name)
        self.event.set()
        # Bounded: a handler that never returns cannot keep the process alive forever.
        self._timer = threading.Timer(self.grace_s, self._overdue)
        self._timer.daemon = True
        self._timer.start()

    def _overdue(self) -> None:
        log.error("graceful stop took longer than %.1fs: exiting", self.grace_s)
        os._exit(1)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
