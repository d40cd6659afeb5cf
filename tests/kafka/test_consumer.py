"""Decoding Kafka records into bridge Records (pure: no broker)."""

from __future__ import annotations

from bridge.kafka.consumer import decode_record
from bridge.kafka.records import CloudEvent


def test_json_value_and_cloudevents_headers_are_decoded() -> None:
    """The value is parsed as JSON and the ce_* headers become the CloudEvent attributes."""
    record = decode_record(
        "commerce.variants",
        1,
        42,
        b"cb-taipei:5001",
        b'{"inventory_quantity": 3}',
        [
            ("ce_id", b"e-1"),
            ("ce_source", b"/cyberbiz/cb-taipei"),
            ("ce_type", b"commerce.variant.updated"),
            ("ce_time", b"2026-01-01T00:00:00.000Z"),
            ("ce_specversion", b"1.0"),
            ("ce_subject", b"5001"),
        ],
        1_767_225_600_000,
    )
    assert CloudEvent(
        "e-1", "/cyberbiz/cb-taipei", "commerce.variant.updated", "2026-01-01T00:00:00.000Z", "1.0", "5001"
    ) == record.ce  # fmt: skip
    assert ({"inventory_quantity": 3}, None) == (record.value, record.decode_error)
    assert ("cb-taipei:5001", "commerce.variants:1:42", 1_767_225_600_000) == (
        record.key,
        record.position,
        record.timestamp_ms,
    )


def test_the_first_of_repeated_headers_wins() -> None:
    """A header sent twice reads as its first value, in ``headers`` and in ``ce``."""
    record = decode_record("t", 0, 0, None, b"{}", [("ce_id", b"first"), ("ce_id", b"second")], 0)
    assert ("first", b"first") == (record.ce.id, record.headers["ce_id"])


def test_values_that_are_not_json_keep_their_bytes_and_say_why() -> None:
    """Invalid JSON, an empty value and a tombstone decode to None with the reason and raw bytes."""
    bad = decode_record("t", 0, 0, b"\xff", b"{x", [], 0)
    assert (None, b"{x", "\ufffd") == (bad.value, bad.raw, bad.key)
    assert "not valid JSON" == (bad.decode_error or "").split(":")[0]
    for value in (b"", None):
        empty = decode_record("t", 0, 1, None, value, [], 0)
        assert (None, b"", "empty value") == (empty.value, empty.raw, empty.decode_error)
