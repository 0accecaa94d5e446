"""A poll of the link takes what has arrived of a reply and returns, on a Redis of the test's
own that is stopped (SIGSTOP) with a big reply half sent: the consumer polls for the read it
sent ahead while its handlers run, and a reply that has begun to arrive must not stop them
until its last byte is in."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import redis

from cdb.embedded.redis_server import EmbeddedRedis
from cdb.runtime.link import Link
from tests.integration.runtime.support import wait_for


def test_a_poll_does_not_wait_for_the_rest_of_a_reply(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    client = redis.Redis.from_url(server.ensure_running())
    pid = int(client.info("server")["process_id"])
    stopped = False
    try:
        big = b"x" * (96 << 20)  # more than the socket buffers (at most 36 MB here) hold
        client.set("big", big)
        link = Link(client)
        reply = link.send(("GET", "big"))
        after = link.send(("STRLEN", "big"))
        wait_for(lambda: bool(link._conn.can_read(timeout=0)), "the first bytes of the reply")
        os.kill(pid, signal.SIGSTOP)  # the rest of the reply cannot come now
        stopped = True
        assert not link.poll(reply)
        assert not reply.done
        assert not link.poll(reply)  # and again: the bytes taken so far are kept, not lost
        os.kill(pid, signal.SIGCONT)
        stopped = False
        deadline = time.monotonic() + 60
        while not link.poll(after):
            assert time.monotonic() < deadline, "the reply never came in whole"
        assert reply.value == big
        assert after.value == len(big)
        assert link.call(("GET", "none")) is None  # the connection is still in step
        link.settle()
    finally:
        if stopped:
            os.kill(pid, signal.SIGCONT)
        client.close()
        server.stop()
