"""Pure state: rate windows, stats window, log, idempotency, tokens, stock (hand-driven clocks)."""

from __future__ import annotations

import pytest

from bridge.config import ShopConfig
from bridge.devtools.simulator.state import (
    RateWindow,
    SimShop,
    SimState,
    StockSeed,
    StoredAnswer,
    WindowMax,
    retry_after_seconds,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_state(
    clock: FakeClock | None = None, *, log_capacity: int = 100, idempotency_capacity: int = 100
) -> SimState:
    clock = clock or FakeClock()
    shops = [SimShop("cb", "cyberbiz", api_token="t"), SimShop("bw", "bentoweb", rate_limit=2.0)]
    return SimState(
        shops,
        log_capacity=log_capacity,
        idempotency_capacity=idempotency_capacity,
        clock=clock,
        wall=clock,
    )


def test_window_admits_five_then_rejects_the_sixth_in_the_same_second() -> None:
    """5/s: the sixth request within 1.0 s is refused, with the wait until the oldest expires."""
    window = RateWindow(5.0)
    admitted = [window.admit(t) for t in (0.0, 0.1, 0.2, 0.3, 0.4)]
    assert [0.0] * 5 == admitted
    assert pytest.approx(0.5) == window.admit(0.5)


def test_window_frees_a_slot_exactly_one_second_later() -> None:
    """A request exactly 1.0 s after the oldest admitted one is admitted again."""
    window = RateWindow(5.0)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        window.admit(t)
    assert 0.0 == window.admit(1.0)
    assert 0.0 < window.admit(1.05)


def test_rejected_requests_do_not_take_a_slot() -> None:
    """Hammering past the limit does not push the next free slot further out."""
    window = RateWindow(5.0)
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        window.admit(t)
    for t in (0.5, 0.6, 0.7, 0.8, 0.9):
        assert 0.0 < window.admit(t)
    assert 0.0 == window.admit(1.0)


def test_fractional_rate_becomes_one_per_longer_window() -> None:
    """0.5/s admits one request per 2.0 s."""
    window = RateWindow(0.5)
    assert (1, 2.0) == (window.limit, window.window)
    assert 0.0 == window.admit(0.0)
    assert pytest.approx(1.0) == window.admit(1.0)
    assert 0.0 == window.admit(2.0)


def test_window_refuses_a_non_positive_rate() -> None:
    """A rate of 0 is a configuration mistake, not 'unlimited'."""
    with pytest.raises(ValueError, match="rate_limit"):
        RateWindow(0.0)


@pytest.mark.parametrize(("wait", "expected"), [(0.01, 1), (0.5, 1), (1.0, 1), (1.2, 2)])
def test_retry_after_is_whole_seconds_at_least_one(wait: float, expected: int) -> None:
    """Retry-After rounds the wait up and never says 0."""
    assert expected == retry_after_seconds(wait)


def test_window_max_tracks_the_busiest_second() -> None:
    """max is the largest count of events within any 1.0 s span."""
    seen = WindowMax()
    for t in (0.0, 0.5, 0.9, 1.0, 1.2, 3.0):
        seen.add(t)
    assert 4 == seen.max  # 0.5, 0.9, 1.0, 1.2


def test_log_since_and_shop_filter() -> None:
    """requests(since=N) returns seq > N; a shop filter keeps only that shop."""
    state = make_state()
    for shop in ("cb", "bw", "cb"):
        state.record(shop, "PUT", "/p", 200, t=1.0)
    assert [2, 3] == [e["seq"] for e in state.requests(since=1)]
    assert [1, 3] == [e["seq"] for e in state.requests(shop="cb")]
    assert [1] == [e["seq"] for e in state.requests(limit=1)]


def test_log_is_bounded_and_since_still_counts_by_seq() -> None:
    """A full log forgets the oldest entries; since keeps meaning 'after seq N'."""
    state = make_state(log_capacity=3)
    for _ in range(5):
        state.record("cb", "GET", "/p", 200, t=1.0)
    assert [3, 4, 5] == [e["seq"] for e in state.requests()]
    assert [5] == [e["seq"] for e in state.requests(since=4)]
    assert [] == state.requests(since=9)


def test_record_counts_429_replays_and_applied_writes() -> None:
    """stats() reflects what record() was told, and receive() feeds the busiest second."""
    clock = FakeClock(0.0)
    state = make_state(clock)
    shop = state.shops["cb"]
    for t in (0.0, 0.1, 0.2):
        shop.receive(t)
    state.record("cb", "PUT", "/p", 200, t=0.0, applied=True)
    state.record("cb", "PUT", "/p", 429, t=0.1)
    state.record("cb", "PUT", "/p", 200, t=0.2, replay=True)
    expected = {
        "requests": 3, "applied": 1, "429": 1, "replays": 1, "max_in_any_1s": 3,
        "webhooks_dropped": 0,
    }  # fmt: skip
    assert expected == state.stats()["cb"]


def test_idempotency_cache_is_bounded() -> None:
    """The oldest remembered answer is forgotten once the cache is full."""
    state = make_state(idempotency_capacity=2)
    for key in ("a", "b", "c"):
        state.remember("cb", key, StoredAnswer(b"f", 200, key.encode()))
    kept = state.remembered("cb", "c")
    assert (None, b"c") == (state.remembered("cb", "a"), kept and kept.body)


def test_idempotency_keys_are_per_shop() -> None:
    """The same key in another shop is another request."""
    state = make_state()
    state.remember("cb", "k", StoredAnswer(b"f", 200, b"{}"))
    assert None is state.remembered("bw", "k")


def test_access_token_expires_with_the_clock() -> None:
    """A token is valid until its ttl has passed, then unknown."""
    clock = FakeClock(100.0)
    state = make_state(clock)
    token = state.issue_token("bw", ttl=60.0)
    clock.now = 159.9
    assert "bw" == state.token_shop(token)
    clock.now = 160.0
    assert None is state.token_shop(token)


def test_expire_tokens_of_one_shop() -> None:
    """expire_tokens(shop) revokes that shop's tokens only."""
    state = make_state()
    mine, other = state.issue_token("bw", 60.0), state.issue_token("cb", 60.0)
    assert 1 == state.expire_tokens("bw")
    assert (None, "cb") == (state.token_shop(mine), state.token_shop(other))


def test_variant_under_another_product_is_not_found() -> None:
    """A Cyberbiz variant is addressed through its own product only."""
    state = make_state()
    shop = state.shops["cb"]
    assert None is not state.variant(shop, "5001", "1001", create=True)
    assert None is state.variant(shop, "5001", "9999", create=True)


def test_missing_variant_is_not_created_when_disabled() -> None:
    """With create_missing off, an unknown variant stays unknown."""
    clock = FakeClock()
    state = SimState([SimShop("cb", "cyberbiz")], create_missing=False, clock=clock, wall=clock)
    assert None is state.variant(state.shops["cb"], "1", create=True)


def test_group_member_write_sets_the_shared_count() -> None:
    """Setting one member of a sync group sets the group and every member."""
    state = make_state()
    state.seed(StockSeed("cb", variants={"1": 5, "2": 5, "3": 7}, groups={"g": 5},
                         group_members={"g": ["1", "2"]}))  # fmt: skip
    shop = state.shops["cb"]
    changes = state.set_variant(shop, shop.variants["1"], 3)
    assert [("1", 5), ("2", 5)] == [(c.variant.id, c.old) for c in changes]
    expected = {"variants": {"1": 3, "2": 3, "3": 7}, "groups": {"g": 3}}
    assert expected == state.stock()["cb"]


def test_sale_refuses_more_than_the_stock() -> None:
    """A shop does not sell what it does not have; a possible sale decrements."""
    state = make_state()
    state.seed(StockSeed("cb", variants={"1": 2}))
    shop = state.shops["cb"]
    assert None is state.sale(shop, shop.variants["1"], 3)
    changes = state.sale(shop, shop.variants["1"], 2)
    assert [(2, 0)] == [(c.old, c.variant.quantity) for c in changes or []]


def test_reset_forgets_stock_log_and_counters() -> None:
    """reset() leaves every shop empty and the stats at zero."""
    state = make_state()
    state.seed(StockSeed("cb", variants={"1": 2}))
    state.shops["cb"].receive(1.0)
    state.record("cb", "GET", "/p", 200, t=1.0)
    state.reset()
    assert ({"variants": {}, "groups": {}}, 0, []) == (
        state.stock()["cb"],
        state.stats()["cb"]["requests"],
        state.requests(),
    )


def test_only_cyberbiz_and_bentoweb_are_simulated() -> None:
    """A 'standard' shop cannot be made into a simulated shop."""
    with pytest.raises(ValueError, match="not simulated"):
        SimShop.from_config(ShopConfig(id="s", platform="standard"))
