"""Model-based property test of the inventory-sync core against a simulated world (§5 invariants).

The world holds each member's true platform stock, the outbox rows not landed yet, and the
webhooks queued per member (FIFO per member, interleaved freely across members). The bridge is the
pure core, driven the way the consumer app drives it. Cases the data cannot tell apart (see
"Known ambiguity" in docs/inventory-sync.md) are rejected with ``assume``, decided from the world's
ground truth before the core is called, never from what the core answered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import assume, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from consumers.inventory_sync.orders import OrderAction, OrderLine, apply_order
from consumers.inventory_sync.outcome import Outcome
from consumers.inventory_sync.pool import observe, plan, reconcile, record_writes
from consumers.inventory_sync.state import GroupState, Kind, MemberSpec, new_group

NEVER = 1e6  # echo_timeout: nothing expires inside one run; quiescence then waits past it
PREV, NOPREV, ORDERS = "prev", "noprev", "orders"


@dataclass
class Hook:
    """A level webhook queued at a member; ``echo`` is the ground truth (caused by our write)."""

    level: int
    previous: int | None
    echo: bool
    write: int | None = None  # the outbox id of the write whose echo this is
    set_by: int | None = None  # the outbox id of the write that had set ``previous``


@dataclass
class OrderEvent:
    line: str
    action: OrderAction
    qty: int


@dataclass
class Row:
    id: int
    value: int
    in_flight: bool = False


@dataclass
class Member:
    key: str
    kind: str
    buffer: int
    stock: int
    rows: list[Row] = field(default_factory=list)
    hooks: list[Hook] = field(default_factory=list)
    orders: list[OrderEvent] = field(default_factory=list)
    last: Hook | OrderEvent | None = None
    blind: bool = False  # an external webhook was lost: our writes must not land until seen
    set_by: int | None = None  # outbox id of the write that last set the stock, None: a change
    superseded: set[int] = field(default_factory=set)  # rows the outbox reported superseded
    echoed: int = 0  # newest outbox id whose echo the consumer received


class SyncWorld(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.members: list[Member] = []
        self.state = GroupState(group="g")
        self.initial = 0
        self.true_delta = 0
        self.next_id = 1
        self.landed: set[int] = set()
        self.lines: dict[str, OrderLine] = {}
        self.open_orders: dict[str, tuple[int, int]] = {}  # line -> (member index, qty)
        self.now = 0.0
        self.planned = 0
        self.sent = 0

    @initialize(
        kinds=st.lists(st.sampled_from([PREV, NOPREV]), min_size=2, max_size=5),
        with_orders=st.booleans(),
        buffers=st.lists(st.integers(0, 2), min_size=5, max_size=5),
        start=st.integers(3, 40),
    )
    def setup(self, kinds: list[str], with_orders: bool, buffers: list[int], start: int) -> None:
        if with_orders:
            kinds = [*kinds[:4], ORDERS]
        self.members = [
            Member(f"shop{i}/variant:{i}", kind, buffers[i], start) for i, kind in enumerate(kinds)
        ]
        specs = [MemberSpec(m.key, m.buffer, m.kind == ORDERS) for m in self.members]
        self.state = new_group("g", specs)
        for m in self.members:  # first contact, then a baseline per member
            self.state, _ = reconcile(self.state, m.key, start, 0.0, echo_timeout=NEVER)
        self.initial = start

    # -- the world ------------------------------------------------------------------------------

    def eligible(self, test: Callable[[Member], bool]) -> list[Member]:
        return [m for m in self.members if test(m)]

    def choose(self, data: st.DataObject, test: Callable[[Member], bool]) -> Member:
        return data.draw(st.sampled_from(self.eligible(test)), label="member")

    @precondition(lambda self: self.eligible(levels))
    @rule(data=st.data())
    def change(self, data: st.DataObject) -> None:
        """A sale, restock or correction at a level-sourced member: a webhook is queued."""
        m = self.choose(data, levels)
        deltas = [d for d in range(-4, 5) if d and m.stock + d >= 0]
        delta = data.draw(st.sampled_from(deltas), label="delta")
        previous, m.stock = m.stock, m.stock + delta
        hook = Hook(m.stock, previous if m.kind == PREV else None, echo=False, set_by=m.set_by)
        m.set_by = None
        self.true_delta += delta
        m.hooks.append(hook)

    @precondition(lambda self: self.eligible(lambda m: m.kind == ORDERS and m.stock > 0))
    @rule(data=st.data(), paid_first=st.booleans(), both=st.booleans())
    def order(self, data: st.DataObject, paid_first: bool, both: bool) -> None:
        """An order at the orders-sourced member: the platform debits, created/paid are queued."""
        m = self.members[-1]
        qty = data.draw(st.integers(1, min(3, m.stock)), label="qty")
        line = f"order{self.next_id}/1"
        self.next_id += 1
        m.stock -= qty
        m.set_by = None
        self.true_delta -= qty
        self.open_orders[line] = (len(self.members) - 1, qty)
        first, second = (OrderAction.PAID, OrderAction.CREATED)
        if not paid_first:
            first, second = second, first
        m.orders.append(OrderEvent(line, first, qty))
        if both:
            m.orders.append(OrderEvent(line, second, qty))

    @precondition(lambda self: self.open_orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """An open order is cancelled (or returned): the platform credits, an event is queued."""
        line = data.draw(st.sampled_from(sorted(self.open_orders)))
        index, qty = self.open_orders.pop(line)
        m = self.members[index]
        m.stock += qty
        m.set_by = None
        self.true_delta += qty
        action = data.draw(st.sampled_from([OrderAction.CANCELLED, OrderAction.RETURNED]))
        m.orders.append(OrderEvent(line, action, qty))

    @precondition(lambda self: self.eligible(lambda m: m.rows))
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        """The relay takes the member's oldest row (it is now on the wire, not supersedable)."""
        m = self.choose(data, lambda m: bool(m.rows))
        m.rows[0].in_flight = True

    @precondition(lambda self: self.eligible(landable))
    @rule(data=st.data())
    def land(self, data: st.DataObject) -> None:
        """The oldest row reaches the platform: the stock is overwritten, an echo is queued."""
        m = self.choose(data, landable)
        self.land_row(m)

    def land_row(self, m: Member) -> None:
        row = m.rows.pop(0)
        old, m.stock = m.stock, row.value
        m.set_by = row.id
        self.landed.add(row.id)
        self.sent += 1
        if m.kind != ORDERS:
            previous = old if m.kind == PREV else None
            m.hooks.append(Hook(row.value, previous, echo=True, write=row.id))

    @precondition(lambda self: self.eligible(on_the_wire))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        """The in-flight row fails: retried later, or superseded (silently) by a newer pending row."""
        m = self.choose(data, on_the_wire)
        if len(m.rows) > 1:
            m.rows.pop(0)
        else:
            m.rows[0].in_flight = False

    # -- the bridge -----------------------------------------------------------------------------

    @rule()
    def plan_writes(self) -> None:
        """The consumer plans once for the batch and adds the rows (superseding pending ones)."""
        self.plan_and_record()

    def plan_and_record(self) -> None:
        written = []
        for p in plan(self.state):
            m = next(m for m in self.members if m.key == p.member)
            superseded = [r for r in m.rows if not r.in_flight]
            m.rows = [r for r in m.rows if r.in_flight] + [Row(self.next_id, p.quantity)]
            written.append((p, self.next_id, superseded[-1].id if superseded else None))
            m.superseded.update(r.id for r in superseded)
            self.next_id += 1
        self.planned += len(written)
        self.state = record_writes(self.state, written, self.now)

    @precondition(lambda self: self.eligible(queued))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        """The oldest queued webhook or order event of the member reaches the consumer."""
        m = self.choose(data, queued)
        assume(not self.deliver_next(m, check=True))

    @precondition(lambda self: self.eligible(lambda m: m.last is not None))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        """The last delivered webhook of the member arrives again (Kafka at-least-once)."""
        m = self.choose(data, lambda m: m.last is not None)
        event = m.last
        if isinstance(event, OrderEvent):
            self.apply(m, event)
            return
        assert event is not None
        assume(not self.ambiguous_hook(m, Hook(event.level, event.previous, echo=False)))
        self.state, out = self.observe_checked(m, event, redelivery=True)
        assert Kind.DUPLICATE == out.kind

    @precondition(lambda self: self.eligible(echo_next))
    @rule(data=st.data())
    def lose_echo(self, data: st.DataObject) -> None:
        """The platform never sends one echo (only where it sends old levels, see the docs)."""
        m = self.choose(data, echo_next)
        m.hooks.pop(0)

    @precondition(lambda self: self.eligible(two_changes_next))
    @rule(data=st.data())
    def lose_change(self, data: st.DataObject) -> None:
        """A change's webhook is lost; a later change at that member is still queued."""
        m = self.choose(data, two_changes_next)
        m.hooks.pop(0)
        m.blind = True

    def last_change_alone(self, m: Member) -> bool:
        alone = len(m.hooks) == 1 and not m.hooks[0].echo and not m.rows
        return alone and not self.state.members[m.key].pending

    @precondition(lambda self: self.eligible(self.last_change_alone))
    @rule(data=st.data())
    def lose_then_reconcile(self, data: st.DataObject) -> None:
        """The member's only webhook is lost; the next reconcile reads the level and catches it."""
        m = self.choose(data, self.last_change_alone)
        bridge = self.state.members[m.key]
        m.hooks.pop(0)
        self.state, out = reconcile(self.state, m.key, m.stock, self.now, echo_timeout=NEVER)
        assert Kind.DRIFT == out.kind or m.stock == bridge.observed
        m.last = None

    @precondition(lambda self: self.eligible(quiet))
    @rule(data=st.data())
    def reconcile_member(self, data: st.DataObject) -> None:
        """A periodic API read of a member with no webhook outstanding."""
        m = self.choose(data, quiet)
        assume(not self.ambiguous_read(m))
        before = self.state.pool
        self.state, out = reconcile(self.state, m.key, m.stock, self.now, echo_timeout=NEVER)
        hypothesis_event(f"reconcile: {out.kind.value}")
        assert before == self.state.pool, "nothing was lost, so a read never moves the pool"
        assert Kind.DRIFT != out.kind
        m.last, m.blind = None, False

    def deliver_next(self, m: Member, *, check: bool) -> bool:
        """Deliver m's next event; True (and nothing done) when it is ambiguous."""
        self.now += 1.0
        if m.orders:
            self.apply(m, m.orders.pop(0))
            return False
        hook = m.hooks[0]
        if check and self.ambiguous_hook(m, hook):
            return True
        m.hooks.pop(0)
        self.state, _ = self.observe_checked(m, hook, redelivery=False)
        if hook.echo:
            m.echoed = max(m.echoed, self.echo_id(m, hook))
        return False

    def apply(self, m: Member, event: OrderEvent) -> None:
        line = self.lines.get(event.line)
        self.state, line, out = apply_order(
            self.state, line, m.key, event.action, event.qty, self.now, echo_timeout=NEVER
        )
        hypothesis_event(f"order: {out.kind.value}")
        self.lines[event.line] = line
        m.last = event

    def observe_checked(
        self, m: Member, hook: Hook, *, redelivery: bool
    ) -> tuple[GroupState, Outcome]:
        before = self.state
        wanted = {(p.member, p.quantity) for p in plan(before)}
        was = before.members[m.key]
        state, out = observe(before, m.key, hook.level, hook.previous, self.now, echo_timeout=NEVER)
        hypothesis_event(f"observe: {out.kind.value}")
        if hook.echo and not redelivery:
            assert (Kind.ECHO, 0) == (out.kind, out.delta), "an echo never moves the pool"
        if out.kind in (Kind.ECHO, Kind.DUPLICATE):
            assert wanted == {(p.member, p.quantity) for p in plan(state)}, "no ping-pong"
        if out.kind is Kind.EXTERNAL and self.in_sync(before, m.key) and not was.pending:
            pool = state.pool
            assert pool is not None
            if pool - m_buffer(state, m.key) >= 0:
                assert m.key not in {p.member for p in plan(state)}, (
                    "the changed member is not rewritten"
                )
        m.last, m.blind = hook, False
        return state, out

    def in_sync(self, state: GroupState, key: str) -> bool:
        member, pool = state.members[key], state.pool
        return (
            pool is not None
            and pool - member.buffer >= 0
            and member.observed == pool - member.buffer
        )

    def echo_id(self, m: Member, hook: Hook) -> int:
        assert hook.write is not None
        return hook.write

    def ambiguous_hook(self, m: Member, hook: Hook) -> bool:
        """A non-echo level equal to a pending write, an echo of a value we wrote twice, or an
        old level equal to a pending write that did not set it."""
        bridge = self.state.members[m.key]
        values = [p.value for p in bridge.pending]
        if hook.level in values and (not hook.echo or values.count(hook.level) > 1):
            return True
        if hook.echo or hook.previous is None or hook.previous == bridge.observed:
            return False
        if hook.previous not in values:
            return False
        matched = bridge.pending[values.index(hook.previous)]
        return matched.outbox_id != hook.set_by

    def ambiguous_read(self, m: Member) -> bool:
        """A read equal to a pending write that is not what last set the stock."""
        bridge = self.state.members[m.key]
        values = [p.value for p in bridge.pending]
        if m.kind == ORDERS or m.stock not in values:
            return False
        return bridge.pending[values.index(m.stock)].outbox_id != m.set_by

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def writes_are_all_accounted(self) -> None:
        """Every API call made was planned by the bridge."""
        assert self.sent <= self.planned

    @invariant()
    def pending_writes_may_still_echo(self) -> None:
        """The bridge keeps no write that was superseded or is older than a received echo."""
        for m in self.members:
            for p in self.state.members[m.key].pending:
                assert p.outbox_id is not None
                assert p.outbox_id not in m.superseded, "a superseded row never echoes"
                if m.kind != ORDERS:
                    assert p.outbox_id > m.echoed, "an echo settles its write and older ones"

    def teardown(self) -> None:
        """Quiesce (deliver everything, plan, land, repeat), then check §5's end-state invariants."""
        if not self.members or not self.quiesce():
            return
        pool = self.state.pool
        assert pool is not None
        for m in self.members:  # orders never echo: the next write fixes an overwritten order
            if m.kind == ORDERS:
                assert max(0, pool - m.buffer) == m.stock, (
                    "an order raced by our write is rewritten"
                )
        self.now += 2 * NEVER  # the reconcile interval passes: stale writes expire, levels are read
        for m in self.members:
            self.state, _ = reconcile(self.state, m.key, m.stock, self.now, echo_timeout=NEVER)
        if not self.quiesce():
            return
        pool = self.state.pool
        assert self.initial + self.true_delta == pool, "every external change applied exactly once"
        assert pool is not None
        for m in self.members:
            want = max(0, pool - m.buffer)
            assert (want, want) == (m.stock, self.state.members[m.key].expected), m.key
        assert [] == plan(self.state), "quiet after quiescence: no more writes"

    def quiesce(self) -> bool:
        """Deliver everything, plan, land, repeat; False when an inherent ambiguity arose."""
        for _ in range(50):
            while any(m.hooks or m.orders for m in self.members):
                for m in self.members:
                    if (m.hooks or m.orders) and self.deliver_next(m, check=True):
                        hypothesis_event("ambiguous while quiescing")
                        return False
            self.plan_and_record()
            if not any(m.rows for m in self.members):
                break
            for m in self.members:
                while m.rows:
                    self.land_row(m)
        return True


def levels(m: Member) -> bool:
    return m.kind != ORDERS


def landable(m: Member) -> bool:
    return bool(m.rows) and not m.blind


def on_the_wire(m: Member) -> bool:
    return bool(m.rows) and m.rows[0].in_flight


def queued(m: Member) -> bool:
    return bool(m.hooks or m.orders)


def quiet(m: Member) -> bool:
    return not (m.hooks or m.orders)


def echo_next(m: Member) -> bool:
    return m.kind == PREV and bool(m.hooks) and m.hooks[0].echo


def two_changes_next(m: Member) -> bool:
    return len(m.hooks) >= 2 and not m.hooks[0].echo and not m.hooks[1].echo


def m_buffer(state: GroupState, key: str) -> int:
    return state.members[key].buffer


TestSyncWorld = SyncWorld.TestCase
TestSyncWorld.settings = settings(
    max_examples=300, stateful_step_count=40, deadline=None, derandomize=True
)
