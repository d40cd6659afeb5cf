"""bridge.times: the one RFC 3339 formatter and the one Asia/Taipei zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.times import TAIPEI, rfc3339


def test_auto_precision_shows_microseconds_only_when_present() -> None:
    """Canonical fields: whole seconds stay short, fractions keep every digit, in UTC with Z."""
    whole = datetime(2024, 7, 11, 15, 27, 46, tzinfo=TAIPEI)
    fraction = whole.replace(microsecond=120)
    assert ("2024-07-11T07:27:46Z", "2024-07-11T07:27:46.000120Z") == (
        rfc3339(whole),
        rfc3339(fraction),
    )


def test_millisecond_precision_always_has_three_decimals() -> None:
    """CloudEvents ce_time and record timestamps: always milliseconds."""
    moment = datetime(2024, 7, 11, 7, 27, 46, 987654, tzinfo=UTC)
    assert ("2024-07-11T07:27:46.987Z", "2024-07-11T07:27:46.000Z") == (
        rfc3339(moment, "milliseconds"),
        rfc3339(moment.replace(microsecond=0), "milliseconds"),
    )


def test_none_stays_none() -> None:
    """An absent time is rendered as an absent field."""
    assert None is rfc3339(None)


def test_taipei_is_utc_plus_8_without_daylight_saving() -> None:
    """Asia/Taipei: +08:00 in winter and summer alike."""
    offsets = {datetime(2024, m, 1, tzinfo=TAIPEI).utcoffset() for m in (1, 7)}
    assert {timedelta(hours=8)} == offsets
