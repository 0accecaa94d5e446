"""A worker process for the system tests: ``python -m tests.system.runtime_worker CONFIG_JSON``.

Runs :func:`cdb.runtime.worker.run_worker` on the test topology with an idempotent handler:
each input event produces one output event whose id is derived from the input's, appended to
``<input aggregate>o``; every invocation is counted in a hash so tests can see re-deliveries.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import redis

from cdb.domain.envelope import EventEnvelope, derive_id
from cdb.eventstore.store import AppendRequest, EventStore
from cdb.runtime.handler import Ack, Delivery
from cdb.runtime.worker import run_worker
from tests.integration.runtime.support import GROUP, TOPIC, alert, topology
from tests.system.support import calls_key as support_calls_key


def output_stream(stream_id: str) -> str:
    # Input aggregates are alert-<12 hex>: a trailing 'o' marks an output, never an input.
    return f"{stream_id}o"


def main(config_text: str) -> int:
    config = json.loads(config_text)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    client = redis.Redis.from_url(config["redis_url"])
    topo = topology(**config.get("policy", {}))
    namespace = config["namespace"]
    # A short retry window inside the store, so an outage reaches the consumer loop quickly.
    store = EventStore(client, topo, namespace, check_server=False, retry_for_s=1.0)
    calls_key = support_calls_key(namespace)
    delay_s = float(config.get("delay_s", 0))

    def handler(event: EventEnvelope, delivery: Delivery) -> Ack:
        if event.stream_id.endswith("o"):
            return Ack()  # an output of this handler (outputs land on the same topic)
        client.hincrby(calls_key, str(event.event_id), 1)
        if delay_s:
            time.sleep(delay_s)
        out = alert(output_stream(event.stream_id), event.sequence_number)
        out = out.model_copy(update={"event_id": derive_id("out", str(event.event_id))})
        return Ack(outputs=[AppendRequest(output_stream(event.stream_id), [out], None)])

    return run_worker(
        client,
        topo,
        namespace,
        topic=TOPIC,
        group=GROUP,
        handler=handler,
        store=store,
        consumer_name=config.get("name"),
        grace_s=float(config.get("grace_s", 10)),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
