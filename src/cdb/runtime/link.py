"""Commands sent ahead on one pooled connection, their replies read later, in order.

The consumer sends a read, a record or an ack and goes on with Python work (decoding,
handlers) while Redis runs it; it reads the reply when it needs it. Replies come back in the
order the commands were sent, so reading one reads (and settles) every reply before it.

The connection is taken from the client's pool on the first send and goes back only once no
reply is outstanding; a connection error disconnects it (replies still owed are lost, the
caller resyncs from Redis), so a half-read connection is never reused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis

_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    # redis-py's generic packer costs more per argument than hiredis packing in C, and a
    # record or an ack carries two arguments per entry.
    from hiredis import pack_command as _hiredis_pack

    _pack = cast(Callable[[tuple[Any, ...]], bytes], _hiredis_pack)
except ImportError:  # pragma: no cover - hiredis is a dependency, but not a requirement
    _pack = None

OnReply = Callable[[Any], None]


class Reply:
    """The reply to one command sent ahead: ``value`` once read (an error reply as the
    exception), ``lost`` when the connection went away before it came."""

    __slots__ = ("done", "lost", "on_reply", "value")

    def __init__(self, on_reply: Callable[[Any], None] | None) -> None:
        self.done = False
        self.lost = False
        self.value: Any = None
        self.on_reply = on_reply


class Link:
    """One connection with a queue of outstanding replies (one consumer thread only)."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._conn: Any = None  # redis-py's Connection is untyped
        self._queue: deque[Reply] = deque()

    @property
    def outstanding(self) -> int:
        return len(self._queue)

    def send(self, args: tuple[Any, ...], on_reply: OnReply | None = None) -> Reply:
        """Send one command without waiting; ``on_reply`` sees its reply when it is read."""
        return self.send_all([(args, on_reply)])[0]

    def send_all(self, commands: Sequence[tuple[tuple[Any, ...], OnReply | None]]) -> list[Reply]:
        """Send commands in one write (one wake-up of the server), without waiting."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self._pool.get_connection()
        try:
            if _pack is not None:
                conn.send_packed_command([b"".join([_pack(args) for args, _ in commands])])
            else:
                conn.send_packed_command(conn.pack_commands([args for args, _ in commands]))
        except BaseException:
            self.reset()
            raise
        replies = [Reply(on_reply) for _, on_reply in commands]
        self._queue.extend(replies)
        return replies

    def poll(self, reply: Reply) -> bool:
        """Read the replies up to ``reply`` that have arrived, without blocking on one that
        has not; True when ``reply`` is in.

        A reply that has begun to arrive is not waited for either: a read of a thousand
        entries comes in over milliseconds while Redis writes it, and blocking on its tail
        idled the caller for a fifth of its time (py-spy, `cdb bench consume`). The bytes
        that are there go into the parser, which keeps them for the next call."""
        conn = self._conn
        while not reply.done and conn is not None:
            try:
                if not conn.can_read(timeout=0):
                    return False
                value = conn.read_response(timeout=0, disconnect_on_error=False)
            except redis.ResponseError as exc:
                value = exc
            except redis.TimeoutError:  # the rest of it is still on its way
                return False
            except BaseException:
                self.reset()
                raise
            self._complete(value)
        return reply.done

    def wait(self, reply: Reply) -> Any:
        """The reply's value (an error reply is returned, not raised), reading those before it.

        Raises what the connection raises when it fails (after disconnecting it)."""
        while not reply.done:
            self._read_one()
        if reply.lost:
            raise redis.ConnectionError("connection lost before the reply came")
        return reply.value

    def call(self, args: tuple[Any, ...]) -> Any:
        """Send and wait; an error reply raises."""
        value = self.wait(self.send(args))
        if isinstance(value, Exception):
            raise value
        return value

    def settle(self) -> None:
        """Read every outstanding reply, then give the connection back to the pool."""
        while self._queue:
            self._read_one()
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._pool.release(conn)

    def reset(self) -> None:
        """Drop the connection (disconnected, so its unread replies die with it)."""
        conn, self._conn = self._conn, None
        queue, self._queue = self._queue, deque()
        for reply in queue:
            reply.done = reply.lost = True
        if conn is not None:
            try:
                conn.disconnect()
            finally:
                self._pool.release(conn)

    def _read_one(self) -> None:
        try:
            value = self._conn.read_response()
        except redis.ResponseError as exc:
            value = exc
        except BaseException:
            self.reset()
            raise
        self._complete(value)

    def _complete(self, value: Any) -> None:
        """The reply at the head of the queue is in."""
        head = self._queue.popleft()
        head.done = True
        head.value = value
        if head.on_reply is not None:
            head.on_reply(value)
