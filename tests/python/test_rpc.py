# Remote procedure calls through Junction with Autobahn|Python, for all six
# transport x serializer combinations: payload pass-through, application
# errors, the dealer's error URIs, unregister, 1000 concurrent calls, and
# calls cancelled when the callee goes away.
import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallResult, RegisterOptions

import wampraw
from conftest import ALL_COMBOS, assert_same
from payloads import PAYLOAD_ARGS, PAYLOAD_KWARGS


def other_combo(combo):
    """A different transport *and* serializer than `combo`."""
    for c in ALL_COMBOS:
        if c.transport != combo.transport and c.serializer != combo.serializer:
            return c
    raise AssertionError("unreachable")


def echo(*args, **kwargs):
    return CallResult(*args, **kwargs)


async def test_call_passes_args_and_kwargs_untouched(wamp, combo, unique):
    callee = await wamp.session()
    caller = await wamp.session()
    proc = unique()
    seen = []

    def handler(*args, **kwargs):
        seen.append((args, kwargs))
        return CallResult(*args, **kwargs)

    reg = await callee.register(handler, proc)
    assert isinstance(reg.id, int)
    res = await caller.call(proc, *PAYLOAD_ARGS, **PAYLOAD_KWARGS)
    # what the callee got
    assert len(seen) == 1
    assert_same(list(seen[0][0]), PAYLOAD_ARGS)
    assert_same(seen[0][1], PAYLOAD_KWARGS)
    # what came back to the caller
    assert isinstance(res, CallResult)
    assert_same(list(res.results), PAYLOAD_ARGS)
    assert_same(res.kwresults, PAYLOAD_KWARGS)


async def test_call_single_value_and_no_value(wamp, combo, unique):
    callee = await wamp.session()
    caller = await wamp.session()
    square, nothing = unique(), unique()
    await callee.register(lambda x: x * x, square)
    await callee.register(lambda: None, nothing)
    assert await caller.call(square, 12) == 144
    assert await caller.call(square, 2**26) == 2**52
    assert await caller.call(nothing) is None


async def test_call_across_transports_and_serializers(wamp, combo, unique):
    callee = await wamp.session()
    caller = await wamp.session(combo=other_combo(combo))
    proc = unique()
    await callee.register(echo, proc)
    res = await caller.call(proc, *PAYLOAD_ARGS, **PAYLOAD_KWARGS)
    assert_same(list(res.results), PAYLOAD_ARGS)
    assert_same(res.kwresults, PAYLOAD_KWARGS)


async def test_callee_can_call_itself(wamp, combo, unique):
    session = await wamp.session()
    proc = unique()
    await session.register(lambda a, b: a + b, proc)
    assert await session.call(proc, 2, 3) == 5


async def test_application_error_passes_through(wamp, combo, unique):
    callee = await wamp.session()
    caller = await wamp.session(combo=other_combo(combo))
    proc = unique()
    err_uri = "com.example.error.custom_failure"

    def fail(*args, **kwargs):
        raise ApplicationError(err_uri, "first", 2, {"nested": [1, 2.5, None]}, reason="bad input", count=3,
                               flags={"a": True})

    await callee.register(fail, proc)
    with pytest.raises(ApplicationError) as exc:
        await caller.call(proc, 1, x=2)
    e = exc.value
    assert e.error == err_uri
    assert_same(list(e.args), ["first", 2, {"nested": [1, 2.5, None]}])
    assert_same(e.kwargs, {"reason": "bad input", "count": 3, "flags": {"a": True}})

    # same combo on both ends
    caller2 = await wamp.session()
    with pytest.raises(ApplicationError) as exc:
        await caller2.call(proc)
    assert exc.value.error == err_uri


async def test_no_such_procedure(wamp, combo, unique):
    caller = await wamp.session()
    with pytest.raises(ApplicationError) as exc:
        await caller.call(unique("com.example.nothing"), 1, 2)
    assert exc.value.error == "wamp.error.no_such_procedure"


async def test_procedure_already_exists(wamp, combo, unique):
    a = await wamp.session()
    b = await wamp.session()
    proc = unique()
    await a.register(lambda: "a", proc)
    with pytest.raises(ApplicationError) as exc:
        await b.register(lambda: "b", proc)
    assert exc.value.error == "wamp.error.procedure_already_exists"
    with pytest.raises(ApplicationError) as exc:
        await a.register(lambda: "a again", proc)
    assert exc.value.error == "wamp.error.procedure_already_exists"
    # the original registration is untouched
    assert await b.call(proc) == "a"


async def test_unregister_then_no_such_procedure(wamp, combo, unique):
    callee = await wamp.session()
    caller = await wamp.session()
    proc = unique()
    reg = await callee.register(lambda: "here", proc)
    assert await caller.call(proc) == "here"
    await reg.unregister()
    with pytest.raises(ApplicationError) as exc:
        await caller.call(proc)
    assert exc.value.error == "wamp.error.no_such_procedure"
    # the URI is free again, for another session
    await caller.register(lambda: "moved", proc)
    assert await callee.call(proc) == "moved"


async def test_registration_released_when_callee_leaves(wamp, combo, unique):
    callee = await wamp.session()
    caller = await wamp.session()
    proc = unique()
    await callee.register(lambda: 1, proc)
    callee.leave()
    await asyncio.wait_for(asyncio.shield(callee.left), 10)
    with pytest.raises(ApplicationError) as exc:
        await caller.call(proc)
    assert exc.value.error == "wamp.error.no_such_procedure"
    await caller.register(lambda: 2, proc)


async def test_no_such_registration(wamp, combo, unique):
    raw = await wamp.raw()
    await raw.join()
    # an id that was never handed out
    rid = raw.request_id()
    reply = await raw.request([wampraw.UNREGISTER, rid, 987654321])
    assert reply[:3] == [wampraw.ERROR, wampraw.UNREGISTER, rid], reply
    assert isinstance(reply[3], dict)
    assert reply[4] == "wamp.error.no_such_registration", reply

    # an id that was valid once
    rid = raw.request_id()
    reply = await raw.request([wampraw.REGISTER, rid, {}, unique()])
    assert reply[0] == wampraw.REGISTERED and reply[1] == rid, reply
    reg_id = reply[2]
    rid = raw.request_id()
    reply = await raw.request([wampraw.UNREGISTER, rid, reg_id])
    assert reply == [wampraw.UNREGISTERED, rid], reply
    rid = raw.request_id()
    reply = await raw.request([wampraw.UNREGISTER, rid, reg_id])
    assert reply[:3] == [wampraw.ERROR, wampraw.UNREGISTER, rid], reply
    assert reply[4] == "wamp.error.no_such_registration", reply


async def test_cannot_unregister_someone_elses_registration(wamp, combo, unique):
    owner = await wamp.raw()
    await owner.join()
    rid = owner.request_id()
    reply = await owner.request([wampraw.REGISTER, rid, {}, unique()])
    assert reply[0] == wampraw.REGISTERED, reply
    reg_id = reply[2]
    thief = await wamp.raw()
    await thief.join()
    rid = thief.request_id()
    reply = await thief.request([wampraw.UNREGISTER, rid, reg_id])
    assert reply[:3] == [wampraw.ERROR, wampraw.UNREGISTER, rid], reply
    assert reply[4] == "wamp.error.no_such_registration", reply


async def test_raw_call_roundtrip(wamp, combo, unique):
    """CALL/INVOCATION/YIELD/RESULT as seen on the wire."""
    callee = await wamp.raw()
    await callee.join()
    caller = await wamp.raw()
    await caller.join()
    proc = unique()
    rid = callee.request_id()
    reply = await callee.request([wampraw.REGISTER, rid, {}, proc])
    assert reply[0] == wampraw.REGISTERED and reply[1] == rid, reply
    reg_id = reply[2]
    assert type(reg_id) is int and 1 <= reg_id <= 2**53

    call_id = caller.request_id()
    await caller.send([wampraw.CALL, call_id, {}, proc, ["x", 1], {"k": [True, None]}])
    inv = await callee.recv()
    assert inv[0] == wampraw.INVOCATION, inv
    assert inv[2] == reg_id, inv
    assert isinstance(inv[3], dict)
    assert inv[4:] == [["x", 1], {"k": [True, None]}], inv
    await callee.send([wampraw.YIELD, inv[1], {}, ["ok"], {"n": 2}])
    res = await caller.recv()
    assert res[:2] == [wampraw.RESULT, call_id], res
    assert isinstance(res[2], dict), res
    assert res[3:] == [["ok"], {"n": 2}], res

    # an error from the callee
    call_id = caller.request_id()
    await caller.send([wampraw.CALL, call_id, {}, proc])
    inv = await callee.recv()
    assert inv[0] == wampraw.INVOCATION and inv[2] == reg_id, inv
    assert inv[4:] in ([], [[]], [[], {}]), inv  # no payload
    await callee.send([wampraw.ERROR, wampraw.INVOCATION, inv[1], {}, "com.example.oops", [1], {"a": "b"}])
    err = await caller.recv()
    assert err[:3] == [wampraw.ERROR, wampraw.CALL, call_id], err
    assert err[4:] == ["com.example.oops", [1], {"a": "b"}], err


async def test_thousand_concurrent_calls(wamp, combo, unique):
    callee = await wamp.session()
    caller = await wamp.session()
    proc = unique()
    loop = asyncio.get_running_loop()
    # The first `overlap` invocations only return once `overlap` invocations
    # are in flight at the same time: a router that waited for each YIELD
    # before sending the next INVOCATION would fail here.
    overlap = 10
    started = 0
    overlapping = loop.create_future()

    async def work(i, tag):
        nonlocal started
        started += 1
        if started == overlap:
            overlapping.set_result(True)
        if i < overlap:
            await asyncio.wait_for(asyncio.shield(overlapping), 20)
        return CallResult(i * 2, tag=tag)

    await callee.register(work, proc)
    n = 1000
    results = await asyncio.wait_for(
        asyncio.gather(*(caller.call(proc, i, f"t{i}") for i in range(n))), 50)
    assert len(results) == n
    for i, r in enumerate(results):
        assert isinstance(r, CallResult), (i, r)
        assert list(r.results) == [i * 2], (i, r)
        assert r.kwresults == {"tag": f"t{i}"}, (i, r)
    assert started == n


@pytest.mark.parametrize("how", ["leave", "disconnect"])
async def test_callee_gone_cancels_calls_in_flight(wamp, combo, unique, how):
    callee = await wamp.session()
    caller = await wamp.session()
    other_caller = await wamp.session(combo=other_combo(combo))
    proc = unique()
    n_calls = 3
    loop = asyncio.get_running_loop()
    all_invoked = loop.create_future()
    invoked = 0

    never = []

    async def hang(*args):
        nonlocal invoked
        invoked += 1
        if invoked == n_calls and not all_invoked.done():
            all_invoked.set_result(True)
        f = loop.create_future()  # never completes
        never.append(f)
        await f

    await callee.register(hang, proc)
    calls = [asyncio.ensure_future(caller.call(proc, 1)), asyncio.ensure_future(caller.call(proc, 2)),
             asyncio.ensure_future(other_caller.call(proc, 3))]
    await asyncio.wait_for(all_invoked, 10)
    for c in calls:
        assert not c.done()

    if how == "leave":
        callee.leave()
    else:
        callee.abort_transport()

    t0 = loop.time()
    for c in calls:
        with pytest.raises(ApplicationError) as exc:
            await asyncio.wait_for(c, 5)
        assert exc.value.error == "wamp.error.canceled", exc.value
    assert loop.time() - t0 < 5
    # the procedure is gone, and both callers are still fine
    for s in (caller, other_caller):
        with pytest.raises(ApplicationError) as exc:
            await s.call(proc)
        assert exc.value.error == "wamp.error.no_such_procedure"
    for f in never:
        f.cancel()


async def test_caller_gone_does_not_break_callee(wamp, combo, unique):
    """A caller disconnecting mid-call must not disturb the callee; the late
    YIELD is dropped and the callee keeps serving other callers. (The router
    also sends INTERRUPT to a callee that announced call_canceling, as Autobahn
    does, which cancels the handler's pending await: `release` may be cancelled.)"""
    callee = await wamp.session()
    caller = await wamp.session()
    proc = unique()
    loop = asyncio.get_running_loop()
    release = loop.create_future()
    started = loop.create_future()

    async def slow(x):
        if x == "slow":
            started.set_result(True)
            await release
        return x

    await callee.register(slow, proc)
    pending = asyncio.ensure_future(caller.call(proc, "slow"))
    await asyncio.wait_for(started, 10)
    caller.abort_transport()
    with pytest.raises(Exception):
        await asyncio.wait_for(pending, 10)
    if not release.done():
        release.set_result(True)
    caller2 = await wamp.session()
    assert await caller2.call(proc, "fast") == "fast"
    assert callee.is_attached()


async def test_register_options_exact_match(wamp, combo, unique):
    callee = await wamp.session()
    caller = await wamp.session()
    proc = unique()
    await callee.register(lambda: "exact", proc, options=RegisterOptions(match="exact"))
    assert await caller.call(proc) == "exact"
    with pytest.raises(ApplicationError) as exc:
        await caller.call(proc + ".sub")
    assert exc.value.error == "wamp.error.no_such_procedure"
