"""`cdb bench consume` runs every path end to end, says what CPU each runtime run kept busy,
and cleans up (figures are not asserted: no timed tests)."""

from __future__ import annotations

import redis

from cdb.bench.consume import run
from cdb.projections.split import usable_cpus

PATHS = ("runtime_noop_1", "runtime_noop_2", "runtime_append_1", "runtime_append_2")


def test_every_path_reads_every_entry_and_reports_its_cpu(
    redis_client: redis.Redis, redis_url: str
) -> None:
    leftovers = "{bench-consume-*"  # the namespaces run() makes
    before = set(redis_client.scan_iter(match=leftovers))
    result = run(redis_client, redis_url, entries=3000, repeat=1)
    doc = result.as_dict()
    assert set(doc["entries_per_s"]) == {"raw", "decode_only", *PATHS}
    assert doc["cpus"] == usable_cpus()
    for name in PATHS:
        used = result.usage[name]
        assert used.seconds == result.seconds[name]
        # no more than the machine has (rates over the run; slack for the clocks' steps of
        # 10 ms, which a no-op run of a few ms may miss altogether)
        assert 0 <= used.busy_cores <= doc["cpus"] * 1.5
        assert used.redis_cores >= 0
        assert doc["cores_busy"][name] == round(used.busy_cores, 2)
    # an appending run of 3,000 entries lasts far longer than a clock step: it shows CPU
    busy = result.usage["runtime_append_1"].busy_cores
    assert busy > 0
    assert doc["scale_ceiling"]["append"] == round(doc["cpus"] / busy, 3)
    assert set(redis_client.scan_iter(match=leftovers)) <= before
