# Advanced Profile, shared_registration: REGISTER.Options.invoke with
# 'single', 'roundrobin', 'random', 'first' and 'last', through Autobahn|Python
# on all six transport x serializer pairs.
#
# Spec (rfc/text/advanced/rpc_shared_registration.md): with 'single' every
# further REGISTER for the URI fails; with the other policies a REGISTER whose
# policy differs from the existing one fails; 'roundrobin' picks callees in
# registration order and loops; 'random' picks at random per call; 'first' /
# 'last' call the first / last callee on the current list (hot standby).
import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

from conftest import other_combo

# a lost reply fails the test in 20 s instead of the suite-wide 60 s
pytestmark = pytest.mark.timeout(20)

POLICIES = ["single", "roundrobin", "random", "first", "last"]
CONFLICT = "wamp.error.procedure_exists_with_different_invocation_policy"


async def shared_callees(wamp, combo, proc, invoke, n):
    """n callee sessions sharing `proc` with policy `invoke`; each answers its index.
    Callees alternate between combo and another transport/serializer."""
    sessions = []
    for i in range(n):
        s = await wamp.session(combo=combo if i % 2 == 0 else other_combo(combo))
        await s.register(lambda i=i: i, proc, options=RegisterOptions(invoke=invoke))
        sessions.append(s)
    return sessions


async def leave(session):
    session.leave()
    await asyncio.wait_for(asyncio.shield(session.left), 10)


async def test_roundrobin_spreads_calls_evenly(wamp, combo, unique):
    proc = unique()
    await shared_callees(wamp, combo, proc, "roundrobin", 3)
    caller = await wamp.session()
    picks = [await caller.call(proc) for _ in range(30)]
    assert sorted(set(picks)) == [0, 1, 2], picks
    assert [picks.count(i) for i in range(3)] == [10, 10, 10], picks
    # callees are taken in registration order, looping back at the end
    for a, b in zip(picks, picks[1:]):
        assert b == (a + 1) % 3, f"not round robin in registration order: {picks}"


async def test_roundrobin_concurrent_calls_exact_counts(wamp, combo, unique):
    proc = unique()
    await shared_callees(wamp, combo, proc, "roundrobin", 3)
    caller = await wamp.session()
    picks = await asyncio.wait_for(asyncio.gather(*(caller.call(proc) for _ in range(60))), 20)
    assert [picks.count(i) for i in range(3)] == [20, 20, 20], picks


async def test_roundrobin_skips_a_callee_that_left(wamp, combo, unique):
    proc = unique()
    callees = await shared_callees(wamp, combo, proc, "roundrobin", 3)
    caller = await wamp.session()
    await leave(callees[1])
    picks = [await caller.call(proc) for _ in range(10)]
    assert [picks.count(i) for i in range(3)] == [5, 0, 5], picks
    for a, b in zip(picks, picks[1:]):
        assert a != b, picks


async def test_random_reaches_all_callees(wamp, combo, unique):
    proc = unique()
    await shared_callees(wamp, combo, proc, "random", 3)
    caller = await wamp.session()
    picks = await asyncio.wait_for(asyncio.gather(*(caller.call(proc) for _ in range(150))), 20)
    counts = [picks.count(i) for i in range(3)]
    # Each count is Binomial(150, 1/3): below 10 with probability < 1e-11.
    assert all(c >= 10 for c in counts), counts
    # Not round robin in disguise: 150 random picks without two equal
    # neighbours has probability (2/3)^149.
    assert any(a == b for a, b in zip(picks, picks[1:])), picks


async def test_first_is_hot_standby(wamp, combo, unique):
    proc = unique()
    callees = await shared_callees(wamp, combo, proc, "first", 3)
    caller = await wamp.session()
    assert [await caller.call(proc) for _ in range(5)] == [0] * 5
    await leave(callees[0])
    assert [await caller.call(proc) for _ in range(5)] == [1] * 5
    # a callee joining later goes to the end of the list
    late = await wamp.session()
    await late.register(lambda: 3, proc, options=RegisterOptions(invoke="first"))
    assert await caller.call(proc) == 1
    await leave(callees[1])
    assert [await caller.call(proc) for _ in range(3)] == [2] * 3
    await leave(callees[2])
    assert await caller.call(proc) == 3


async def test_last_is_hot_standby(wamp, combo, unique):
    proc = unique()
    callees = await shared_callees(wamp, combo, proc, "last", 3)
    caller = await wamp.session()
    assert [await caller.call(proc) for _ in range(5)] == [2] * 5
    await leave(callees[2])
    assert [await caller.call(proc) for _ in range(5)] == [1] * 5
    # a callee registering later becomes the last one
    late = await wamp.session()
    late_reg = await late.register(lambda: 3, proc, options=RegisterOptions(invoke="last"))
    assert await caller.call(proc) == 3
    # unregistering (rather than leaving) also hands over
    await late_reg.unregister()
    assert await caller.call(proc) == 1
    await leave(callees[1])
    assert await caller.call(proc) == 0


@pytest.mark.parametrize("invoke", [p for p in POLICIES if p != "single"])
async def test_shared_registration_has_one_id(wamp, combo, unique, invoke):
    proc = unique()
    a = await wamp.session()
    reg_a = await a.register(lambda: "a", proc, options=RegisterOptions(invoke=invoke))
    b = await wamp.session(combo=other_combo(combo))
    reg_b = await b.register(lambda: "b", proc, options=RegisterOptions(invoke=invoke))
    assert reg_a.id == reg_b.id


@pytest.mark.parametrize("first_options", [None, RegisterOptions(invoke="single")], ids=["default", "single"])
async def test_second_single_is_refused(wamp, combo, unique, first_options):
    proc = unique()
    owner = await wamp.session()
    await owner.register(lambda: "owner", proc, options=first_options)
    other = await wamp.session(combo=other_combo(combo))
    for opts in (None, RegisterOptions(invoke="single")):
        with pytest.raises(ApplicationError) as exc:
            await other.register(lambda: "other", proc, options=opts)
        assert exc.value.error == "wamp.error.procedure_already_exists", (opts, exc.value)
    # a shared policy cannot join a 'single' registration either
    with pytest.raises(ApplicationError) as exc:
        await other.register(lambda: "other", proc, options=RegisterOptions(invoke="roundrobin"))
    assert exc.value.error in ("wamp.error.procedure_already_exists", CONFLICT), exc.value
    caller = await wamp.session()
    assert await caller.call(proc) == "owner"


@pytest.mark.parametrize("existing,requested", [
    ("roundrobin", "random"),
    ("roundrobin", "single"),
    ("random", "first"),
    ("first", "last"),
    ("last", "roundrobin"),
])
async def test_mismatched_policy_is_refused(wamp, combo, unique, existing, requested):
    proc = unique()
    a = await wamp.session()
    await a.register(lambda: "a", proc, options=RegisterOptions(invoke=existing))
    b = await wamp.session(combo=other_combo(combo))
    with pytest.raises(ApplicationError) as exc:
        await b.register(lambda: "b", proc, options=RegisterOptions(invoke=requested))
    assert exc.value.error == CONFLICT, exc.value
    # the refused callee was not added; the same policy still joins
    caller = await wamp.session()
    assert {await caller.call(proc) for _ in range(4)} == {"a"}
    await b.register(lambda: "b", proc, options=RegisterOptions(invoke=existing))
    if existing == "roundrobin":
        assert sorted([await caller.call(proc) for _ in range(4)]) == ["a", "a", "b", "b"]


async def test_registration_ends_with_last_callee(wamp, combo, unique):
    proc = unique()
    callees = await shared_callees(wamp, combo, proc, "roundrobin", 2)
    caller = await wamp.session()
    await leave(callees[0])
    assert await caller.call(proc) == 1
    await leave(callees[1])
    with pytest.raises(ApplicationError) as exc:
        await caller.call(proc)
    assert exc.value.error == "wamp.error.no_such_procedure"
    # the URI is free again, for any policy
    fresh = await wamp.session()
    await fresh.register(lambda: "fresh", proc, options=RegisterOptions(invoke="single"))
    assert await caller.call(proc) == "fresh"
