"""Job ids are UUIDv7: RFC 9562 layout, the creation time first, unique."""

from __future__ import annotations

import time
import uuid

from jobsight.runners.ids import new_job_id, new_job_ids


def _ms(value: uuid.UUID) -> int:
    return value.int >> 80


def test_layout_is_rfc_9562_version_7():
    before = time.time_ns() // 1_000_000
    ids = [new_job_id(), *new_job_ids(50)]
    after = time.time_ns() // 1_000_000
    for value in ids:
        assert isinstance(value, uuid.UUID) and uuid.UUID(str(value)) == value
        assert hash(value) == hash(uuid.UUID(str(value)))
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert before <= _ms(value) <= after


def test_unique_and_ordered_by_creation_time():
    batch = new_job_ids(100_000)
    assert len(set(batch)) == len(batch)
    time.sleep(0.002)
    later = new_job_id()
    assert all(value < later for value in batch)  # a later millisecond sorts after
    assert len({_ms(value) for value in batch}) == 1  # one clock reading per batch


def test_random_bits_vary():
    a, b = new_job_ids(2)
    # Same millisecond, different random parts (12 + 62 bits).
    assert _ms(a) == _ms(b) and a != b
    assert new_job_ids(0) == []
