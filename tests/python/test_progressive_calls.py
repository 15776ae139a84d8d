# Advanced Profile, progressive_call_results and progressive_call_invocations.
#
# Progressive results go through Autobahn|Python on both ends
# (CallOptions(on_progress=...) and details.progress(...) in the callee), on all
# six transport x serializer pairs, with raw clients checking the wire. A caller
# that leaves mid-stream gets its callee interrupted (INTERRUPT killnowait).
#
# Autobahn|Python cannot send CALL with Options.progress=true nor handle several
# INVOCATIONs with one request id, so progressive call invocations use raw
# clients (wampraw) on both ends.
#
# Spec: rfc/text/advanced/rpc_progressive_call_results.md,
#       rfc/text/advanced/rpc_progressive_call_invocations.md.
import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, RegisterOptions

import wampraw
from autobahn_helpers import wait_for
from conftest import other_combo
from raw_clients import (ALL_CLIENT_FEATURES, INTERRUPT, expect, expect_invocation, payload_of, raw_call, raw_peer,
                         raw_register)

# a lost reply fails the test in 20 s instead of the suite-wide 60 s
pytestmark = pytest.mark.timeout(20)

DETAILS = RegisterOptions(details_arg="details")


def is_progress(details):
    return details.get("progress") is True


# --------------------------------------------------------------------------
# progressive call results
# --------------------------------------------------------------------------


async def test_progressive_results_in_order_then_final(wamp, combo, unique):
    proc = unique()
    callee = await wamp.session()
    caller = await wamp.session(combo=other_combo(combo))

    async def stream(n, details=None):
        assert details.progress is not None, "caller asked for progress, callee got no progress()"
        for i in range(n):
            details.progress(i, square=i * i)
            await asyncio.sleep(0)  # let the transport write in between
        details.progress()  # an empty progressive result is allowed too
        return "done"

    await callee.register(stream, proc, options=DETAILS)
    got = []
    call = None

    def on_progress(*args, **kwargs):
        got.append((list(args), kwargs, call.done()))

    call = caller.call(proc, 5, options=CallOptions(on_progress=on_progress))
    assert await asyncio.wait_for(call, 10) == "done"
    expected = [([i], {"square": i * i}, False) for i in range(5)] + [([], {}, False)]
    assert got == expected


async def test_progressive_results_then_error(wamp, combo, unique):
    proc = unique()
    callee = await wamp.session()
    caller = await wamp.session()

    def fail_late(details=None):
        details.progress("one")
        details.progress("two")
        raise ApplicationError("com.example.error.late", "after two")

    await callee.register(fail_late, proc, options=DETAILS)
    got = []
    with pytest.raises(ApplicationError) as exc:
        await caller.call(proc, options=CallOptions(on_progress=lambda *a: got.append(list(a))))
    assert exc.value.error == "com.example.error.late"
    assert list(exc.value.args) == ["after two"]
    assert got == [["one"], ["two"]]


async def test_progressive_results_concurrent_calls_do_not_mix(wamp, combo, unique):
    proc = unique()
    callee = await wamp.session()
    caller = await wamp.session()

    async def stream(tag, n, details=None):
        for i in range(n):
            details.progress(tag, i)
            await asyncio.sleep(0)
        return tag

    await callee.register(stream, proc, options=DETAILS)
    progress = {t: [] for t in "abcd"}
    calls = [caller.call(proc, t, 10, options=CallOptions(on_progress=lambda tag, i: progress[tag].append(i)))
             for t in "abcd"]
    assert await asyncio.wait_for(asyncio.gather(*calls), 10) == list("abcd")
    assert progress == {t: list(range(10)) for t in "abcd"}


async def test_progressive_results_on_the_wire(wamp, combo, unique):
    proc = unique()
    callee = await raw_peer(wamp)
    caller = await raw_peer(wamp, combo=other_combo(combo))
    reg = await raw_register(callee, proc)
    rid = await raw_call(caller, proc, ["go"], {"receive_progress": True})
    inv = await expect_invocation(callee, reg)
    assert inv[3].get("receive_progress") is True, inv
    chunks = [["Y2010", 120], ["Y2011", 205], ["Y2012", 165]]
    for chunk in chunks:
        await callee.send([wampraw.YIELD, inv[1], {"progress": True}, chunk])
    await callee.send([wampraw.YIELD, inv[1], {}, ["Total", 490], {"years": 3}])
    for chunk in chunks:
        res = await expect(caller, wampraw.RESULT, what="caller")
        assert res[1] == rid and is_progress(res[2]), res
        assert payload_of(res, 3)[0] == chunk, res
    res = await expect(caller, wampraw.RESULT, what="caller")
    assert res[1] == rid and not res[2].get("progress"), res
    assert res[3:] == [["Total", 490], {"years": 3}], res


@pytest.mark.parametrize("caller_kind", ["autobahn", "raw"])
async def test_caller_without_receive_progress_gets_final_only(wamp, combo, unique, caller_kind):
    proc = unique()
    callee = await raw_peer(wamp)
    reg = await raw_register(callee, proc)
    if caller_kind == "autobahn":
        caller = await wamp.session(combo=other_combo(combo))
        call = asyncio.ensure_future(caller.call(proc, "go"))
    else:
        caller = await raw_peer(wamp, combo=other_combo(combo))
        rid = await raw_call(caller, proc, ["go"])
    inv = await expect_invocation(callee, reg)
    assert not inv[3].get("receive_progress"), inv
    # the callee streams anyway
    for i in range(3):
        await callee.send([wampraw.YIELD, inv[1], {"progress": True}, [i]])
    await callee.send([wampraw.YIELD, inv[1], {}, ["final"]])
    if caller_kind == "autobahn":
        assert await asyncio.wait_for(call, 10) == "final"
    else:
        res = await expect(caller, wampraw.RESULT, what="caller")
        assert res[1] == rid and not res[2].get("progress"), f"expected only the final RESULT, got {res!r}"
        assert res[3] == ["final"], res


@pytest.mark.parametrize("how", ["leave", "disconnect"])
async def test_caller_leaving_mid_stream_interrupts_autobahn_callee(wamp, combo, unique, how):
    proc = unique()
    callee = await wamp.session()
    caller = await wamp.session(combo=other_combo(combo))
    loop = asyncio.get_running_loop()
    interrupted = loop.create_future()
    first_progress = loop.create_future()

    async def stream(details=None):
        details.progress("first")
        try:
            await loop.create_future()  # until interrupted
        except asyncio.CancelledError:
            interrupted.set_result(True)
            raise
        return "never"

    await callee.register(stream, proc, options=DETAILS)
    await callee.register(lambda: "still here", proc + ".ping")

    def on_progress(x):
        if not first_progress.done():
            first_progress.set_result(x)

    call = asyncio.ensure_future(caller.call(proc, options=CallOptions(on_progress=on_progress)))
    assert await wait_for(first_progress) == "first"
    if how == "leave":
        caller.leave()
    else:
        caller.abort_transport()
    await asyncio.wait_for(interrupted, 10)
    call.cancel()
    assert callee.is_attached()
    other = await wamp.session()
    assert await other.call(proc + ".ping") == "still here"


@pytest.mark.parametrize("how", ["leave", "disconnect"])
async def test_caller_leaving_mid_stream_on_the_wire(wamp, combo, unique, how):
    proc = unique()
    callee = await raw_peer(wamp)
    reg = await raw_register(callee, proc)
    caller = await wamp.session(combo=other_combo(combo))
    got = asyncio.Queue()
    call = asyncio.ensure_future(caller.call(proc, options=CallOptions(on_progress=got.put_nowait)))
    inv = await expect_invocation(callee, reg)
    assert inv[3].get("receive_progress") is True, inv
    await callee.send([wampraw.YIELD, inv[1], {"progress": True}, [1]])
    assert await asyncio.wait_for(got.get(), 10) == 1
    if how == "leave":
        caller.leave()
    else:
        caller.abort_transport()
    interrupt = await expect(callee, INTERRUPT, what="callee after the caller left")
    assert interrupt[1] == inv[1], interrupt
    assert interrupt[2].get("mode") == "killnowait", interrupt
    # late progress and final answers are discarded; the callee stays connected
    await callee.send([wampraw.YIELD, inv[1], {"progress": True}, [2]])
    await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    other = await raw_peer(wamp)
    rid = await raw_call(other, proc, ["next"])
    inv2 = await expect_invocation(callee, reg)
    assert inv2[4] == ["next"], inv2
    await callee.send([wampraw.YIELD, inv2[1], {}, ["ok"]])
    res = await expect(other, wampraw.RESULT)
    assert res[1] == rid and res[3] == ["ok"], res
    call.cancel()


async def test_callee_leaving_mid_stream_cancels_the_call(wamp, combo, unique):
    proc = unique()
    callee = await raw_peer(wamp)
    reg = await raw_register(callee, proc)
    caller = await wamp.session(combo=other_combo(combo))
    got = []
    call = asyncio.ensure_future(caller.call(proc, options=CallOptions(on_progress=got.append)))
    inv = await expect_invocation(callee, reg)
    await callee.send([wampraw.YIELD, inv[1], {"progress": True}, ["p"]])
    await callee.send([wampraw.GOODBYE, {}, "wamp.close.close_realm"])
    with pytest.raises(ApplicationError) as exc:
        await asyncio.wait_for(call, 10)
    assert exc.value.error == "wamp.error.canceled"
    assert got == ["p"]


# --------------------------------------------------------------------------
# progressive call invocations (raw on both ends)
# --------------------------------------------------------------------------


async def test_progressive_invocations(wamp, combo, unique):
    proc = unique()
    callee = await raw_peer(wamp)
    caller = await raw_peer(wamp, combo=other_combo(combo))
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    chunks = [["chunk", 0], ["chunk", 1], ["chunk", 2]]
    inv_ids = set()
    for chunk in chunks:
        await caller.send([wampraw.CALL, rid, {"progress": True}, proc, chunk])
        inv = await expect_invocation(callee, reg)
        assert is_progress(inv[3]), f"INVOCATION for a progressive CALL lacks progress=true: {inv!r}"
        assert inv[4] == chunk, inv
        inv_ids.add(inv[1])
    await caller.send([wampraw.CALL, rid, {}, proc, ["last"], {"n": 4}])
    inv = await expect_invocation(callee, reg)
    assert not inv[3].get("progress"), f"the final INVOCATION must not be progressive: {inv!r}"
    assert inv[4:] == [["last"], {"n": 4}], inv
    inv_ids.add(inv[1])
    assert len(inv_ids) == 1, f"INVOCATIONs of one progressive call use several request ids: {inv_ids}"
    await callee.send([wampraw.YIELD, inv[1], {}, ["received", 4]])
    res = await expect(caller, wampraw.RESULT, what="caller")
    assert res[1] == rid and not res[2].get("progress"), res
    assert res[3] == ["received", 4], res
    # the call is over: a fresh call with a new request id works normally
    rid2 = await raw_call(caller, proc, ["plain"])
    inv2 = await expect_invocation(callee, reg)
    assert inv2[4] == ["plain"] and not inv2[3].get("progress"), inv2
    await callee.send([wampraw.YIELD, inv2[1], {}, ["plain ok"]])
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid2 and res[3] == ["plain ok"], res


async def test_progressive_invocations_final_progress_false(wamp, combo, unique):
    """The last CALL may also say progress=false explicitly."""
    proc = unique()
    callee = await raw_peer(wamp)
    caller = await raw_peer(wamp)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"progress": True}, proc, [1]])
    inv = await expect_invocation(callee, reg)
    await caller.send([wampraw.CALL, rid, {"progress": False}, proc, [2]])
    inv2 = await expect_invocation(callee, reg)
    assert inv2[1] == inv[1] and inv2[4] == [2] and not inv2[3].get("progress"), inv2
    await callee.send([wampraw.YIELD, inv[1], {}, [3]])
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid and res[3] == [3], res


async def test_progressive_invocations_with_progressive_results(wamp, combo, unique):
    """A two-way stream: every chunk in is answered with a progressive result."""
    proc = unique()
    callee = await raw_peer(wamp)
    caller = await raw_peer(wamp, combo=other_combo(combo))
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    inv_id = None
    for i in range(3):
        await caller.send([wampraw.CALL, rid, {"progress": True, "receive_progress": True}, proc, [i]])
        inv = await expect_invocation(callee, reg)
        inv_id = inv_id or inv[1]
        assert inv[1] == inv_id and inv[4] == [i], inv
        await callee.send([wampraw.YIELD, inv_id, {"progress": True}, [i * 10]])
        res = await expect(caller, wampraw.RESULT)
        assert res[1] == rid and is_progress(res[2]) and res[3] == [i * 10], res
    await caller.send([wampraw.CALL, rid, {}, proc, ["end"]])
    inv = await expect_invocation(callee, reg)
    assert inv[1] == inv_id and inv[4] == ["end"], inv
    await callee.send([wampraw.YIELD, inv_id, {}, ["closed"]])
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid and not res[2].get("progress") and res[3] == ["closed"], res


async def test_progressive_invocations_stay_with_one_callee(wamp, combo, unique):
    """With a shared registration, every chunk goes to the callee the first one went to."""
    proc = unique()
    callees = [await raw_peer(wamp), await raw_peer(wamp, combo=other_combo(combo))]
    for c in callees:
        reg = await raw_register(c, proc, {"invoke": "roundrobin"})
    # a private procedure per callee, used as a barrier below
    barriers = [await raw_register(c, f"{proc}_barrier{i}") for i, c in enumerate(callees)]
    caller = await raw_peer(wamp)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"progress": True}, proc, [0]])
    tasks = {asyncio.ensure_future(c.recv()): i for i, c in enumerate(callees)}
    done, pending = await asyncio.wait(tasks, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    assert len(done) == 1, f"first chunk reached {len(done)} callees"
    task = done.pop()
    chosen = tasks[task]
    other = 1 - chosen
    inv = task.result()
    assert inv[0] == wampraw.INVOCATION and inv[2] == reg and inv[4] == [0], inv
    for i in range(1, 4):
        await caller.send([wampraw.CALL, rid, {"progress": True}, proc, [i]])
    await caller.send([wampraw.CALL, rid, {}, proc, ["end"]])
    await raw_call(caller, f"{proc}_barrier{other}", ["barrier"])
    stream = [await expect_invocation(callees[chosen], reg) for _ in range(4)]
    assert [m[4] for m in stream] == [[1], [2], [3], ["end"]], stream
    assert {m[1] for m in stream} == {inv[1]}, stream
    # the other callee got none of the chunks: its next message is the barrier
    b = await expect_invocation(callees[other])
    assert b[2] == barriers[other] and b[4] == ["barrier"], f"chunk reached the other callee: {b!r}"
    await callees[chosen].send([wampraw.YIELD, inv[1], {}, ["all"]])
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid and res[3] == ["all"], res


async def test_progressive_invocations_freeze_caller_disclosure(wamp, combo, unique):
    """Options of the initiating CALL hold for the whole call: with disclose_me on
    the first CALL, every INVOCATION of the call carries the caller's identity
    (spec: 'Freezing of Options in Progressive Call Invocations')."""
    proc = unique()
    callee = await raw_peer(wamp)
    caller = await raw_peer(wamp)
    reg = await raw_register(callee, proc)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"progress": True, "disclose_me": True}, proc, [0]])
    await caller.send([wampraw.CALL, rid, {"progress": True}, proc, [1]])
    await caller.send([wampraw.CALL, rid, {}, proc, [2]])
    invs = [await expect_invocation(callee, reg) for _ in range(3)]
    for inv in invs:
        assert inv[3].get("caller") == caller.session_id, f"INVOCATION without the frozen caller disclosure: {inv!r}"
    await callee.send([wampraw.YIELD, invs[0][1], {}])
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid, res


async def test_progressive_invocations_to_callee_without_the_feature(wamp, combo, unique):
    """A callee that did not announce progressive_call_invocations cannot take
    them: the dealer answers wamp.error.feature_not_supported (spec: 'Ignoring
    Progressive Call Invocations')."""
    proc = unique()
    roles = {k: v for k, v in ALL_CLIENT_FEATURES.items()}
    roles["callee"] = {"features": {"call_canceling": True, "progressive_call_results": True}}
    callee = await raw_peer(wamp, roles=roles)
    await raw_register(callee, proc)
    caller = await raw_peer(wamp)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"progress": True}, proc, [0]])
    # whichever comes first: the caller's answer, or an INVOCATION the callee
    # should never have got
    to_caller = asyncio.ensure_future(caller.recv())
    to_callee = asyncio.ensure_future(callee.recv())
    done, pending = await asyncio.wait({to_caller, to_callee}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    assert done, "neither the caller nor the callee got anything"
    if to_callee in done:
        raise AssertionError(f"the dealer forwarded the progressive CALL to a callee without "
                             f"progressive_call_invocations: callee got {to_callee.result()!r}; expected "
                             f"ERROR wamp.error.feature_not_supported to the caller")
    reply = to_caller.result()
    assert reply[:3] == [wampraw.ERROR, wampraw.CALL, rid], (
        f"expected ERROR feature_not_supported, got {reply!r}")
    assert reply[4] == "wamp.error.feature_not_supported", reply


@pytest.mark.parametrize("how", ["goodbye", "disconnect"])
async def test_caller_leaving_during_progressive_invocations(wamp, combo, unique, how):
    proc = unique()
    callee = await raw_peer(wamp)
    reg = await raw_register(callee, proc)
    caller = await raw_peer(wamp, combo=other_combo(combo))
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"progress": True}, proc, [0]])
    inv = await expect_invocation(callee, reg)
    if how == "goodbye":
        await caller.send([wampraw.GOODBYE, {}, "wamp.close.close_realm"])
    else:
        caller.abort()
    interrupt = await expect(callee, INTERRUPT, what="callee after the caller left")
    assert interrupt[1] == inv[1] and interrupt[2].get("mode") == "killnowait", interrupt
    # the callee's late answer is discarded and it keeps serving
    await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    other = await raw_peer(wamp)
    rid2 = await raw_call(other, proc, ["x"])
    inv2 = await expect_invocation(callee, reg)
    await callee.send([wampraw.YIELD, inv2[1], {}, ["y"]])
    res = await expect(other, wampraw.RESULT)
    assert res[1] == rid2 and res[3] == ["y"], res


async def test_progressive_call_from_caller_without_the_feature_is_accepted(wamp, combo, unique):
    """The spec makes a progressive CALL from a caller that did not announce
    progressive_call_invocations a protocol error, but wampy.js sends such CALLs
    without announcing the feature; the router supports it, so it serves them
    (interoperating with the client, as Crossbar.io does) instead of aborting."""
    proc = unique()
    callee = await raw_peer(wamp)
    reg = await raw_register(callee, proc)
    roles = {k: v for k, v in ALL_CLIENT_FEATURES.items()}
    roles["caller"] = {"features": {"call_canceling": True, "progressive_call_results": True}}
    caller = await raw_peer(wamp, combo=other_combo(combo), roles=roles)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"progress": True}, proc, [0]])
    inv = await expect_invocation(callee, reg)
    assert is_progress(inv[3]) and inv[4] == [0], inv
    await caller.send([wampraw.CALL, rid, {}, proc, [1]])
    last = await expect_invocation(callee, reg)
    assert last[1] == inv[1] and not last[3].get("progress") and last[4] == [1], last
    await callee.send([wampraw.YIELD, inv[1], {}, ["both"]])
    res = await expect(caller, wampraw.RESULT, what="caller")
    assert res[1] == rid and res[3] == ["both"], res

