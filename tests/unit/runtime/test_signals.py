"""SIGTERM asks for a graceful stop."""

from __future__ import annotations

import os
import signal

from cdb.runtime.signals import GracefulStop


def test_sigterm_sets_the_stop_flag_and_arms_a_bounded_grace_period() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    stop = GracefulStop(grace_s=60).install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.event.wait(5)
    finally:
        stop.cancel_timer()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
