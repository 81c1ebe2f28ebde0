"""The one parser of Graph timestamps, on every format Graph returns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batch_rotate.tenant_clock import parse_graph_time

WHEN = datetime(2026, 11, 27, 1, 2, 3, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T01:02:03.1234567Z",  # managedDevice and deviceActionResults: 7 digits, Z
        "2026-11-27T01:02:03.123456Z",
        "2026-11-27T01:02:03.1234567+00:00",  # recovery keys' createdDateTime
        "2026-11-27T01:02:03.1234567",  # no zone: Graph's zone-less times are UTC
        "2026-11-27T01:02:03.123456789Z",  # more digits than datetime holds: cut, not rounded
        "2026-11-27T03:02:03.1234567+02:00",  # another offset: converted
        "  2026-11-27t01:02:03.1234567z ",
    ],
)
def test_graph_formats_parse_to_the_same_utc_instant(text: str) -> None:
    assert parse_graph_time(text) == WHEN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T01:02:03Z", datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)),
        ("2026-11-27T01:02:03.5Z", datetime(2026, 11, 27, 1, 2, 3, 500000, tzinfo=UTC)),
        ("2026-11-27 01:02:03", datetime(2026, 11, 27, 1, 2, 3, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),  # a never-synced device
    ],
)
def test_whole_seconds_short_fractions_and_the_minimum(text: str, expected: datetime) -> None:
    parsed = parse_graph_time(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "2026-11-27",
        "2026-02-31T00:00:00Z",
        "2026-11-27T01:02Z",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_what_is_not_a_graph_time_is_none(text: str) -> None:
    assert parse_graph_time(text) is None
