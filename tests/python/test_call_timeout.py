# Advanced Profile, call_timeout: CALL.Options.timeout (milliseconds on the
# wire) makes the dealer answer ERROR wamp.error.timeout and interrupt the
# callee (killnowait) when it announced call_canceling; otherwise the callee is
# left alone ('skip') and its late answer discarded.
#
# Autobahn|Python 26: CallOptions(timeout=...) is documented as seconds, but is
# copied verbatim into CALL.Options.timeout, and message.Call only accepts an
# int; Autobahn runs no timer of its own. So CallOptions(timeout=200) is a
# 200 ms dealer-side timeout.
#
# These tests spend wall time on timers, so they run on four of the six
# transport x serializer pairs (both transports, json and msgpack).
#
# Spec: rfc/text/advanced/rpc_call_timeout.md (and the 'Timeouts' section of
# rpc_progressive_call_results.md).
import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, RegisterOptions

import wampraw
from autobahn_helpers import wait_for
from conftest import ALL_COMBOS, other_combo, timed_combos
from raw_clients import CANCEL, INTERRUPT, NO_FEATURES, expect, expect_invocation, raw_call, raw_peer, raw_register

# a lost reply fails the test in 20 s instead of the suite-wide 60 s
pytestmark = pytest.mark.timeout(20)

TIMEOUT = "wamp.error.timeout"
TIMEOUT_MS = 150
# generous upper bound for "within a bounded time" on a loaded machine
LATE = 5.0


class SlowCallee:
    def __init__(self, session, proc):
        loop = asyncio.get_running_loop()
        self.session = session
        self.proc = proc
        self.started = asyncio.Queue()
        self.interrupted = loop.create_future()
        self.release = loop.create_future()

    async def register(self):
        await self.session.register(self.handler, self.proc)
        await self.session.register(lambda x: ["ping", x], self.proc + ".ping")

    async def handler(self, x):
        self.started.put_nowait(x)
        try:
            await asyncio.shield(self.release)
        except asyncio.CancelledError:
            if not self.interrupted.done():
                self.interrupted.set_result(x)
            raise
        return ["done", x]


@timed_combos
async def test_timeout_autobahn(wamp, unique, tcombo):
    callee = SlowCallee(await wamp.session(combo=tcombo), unique())
    await callee.register()
    caller = await wamp.session(combo=other_combo(tcombo))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(ApplicationError) as exc:
        await asyncio.wait_for(caller.call(callee.proc, 1, options=CallOptions(timeout=TIMEOUT_MS)), LATE)
    elapsed = loop.time() - t0
    assert exc.value.error == TIMEOUT, exc.value
    assert elapsed >= TIMEOUT_MS / 1000 * 0.95, f"timed out after {elapsed:.3f}s, before {TIMEOUT_MS} ms"
    assert await wait_for(callee.interrupted) == 1
    assert await caller.call(callee.proc + ".ping", 2) == ["ping", 2]
    assert callee.session.is_attached() and caller.is_attached()


@timed_combos
async def test_timeout_on_the_wire(wamp, unique, tcombo):
    proc = unique()
    callee = await raw_peer(wamp, combo=tcombo)
    reg = await raw_register(callee, proc)
    ping = await raw_register(callee, proc + ".ping")
    caller = await raw_peer(wamp, combo=other_combo(tcombo))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    rid = await raw_call(caller, proc, ["slow"], {"timeout": TIMEOUT_MS})
    inv = await expect_invocation(callee, reg)
    err = await caller.recv(LATE)
    elapsed = loop.time() - t0
    assert err[:3] == [wampraw.ERROR, wampraw.CALL, rid], err
    assert err[4] == TIMEOUT, err
    assert elapsed >= TIMEOUT_MS / 1000 * 0.95, elapsed
    interrupt = await expect(callee, INTERRUPT, what="callee after the timeout")
    assert interrupt[1] == inv[1], interrupt
    assert interrupt[2].get("mode") == "killnowait", interrupt
    # the late answer is discarded; the callee keeps serving
    await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    rid2 = await raw_call(caller, proc + ".ping", ["p"])
    inv2 = await expect_invocation(callee, ping)
    await callee.send([wampraw.YIELD, inv2[1], {}, ["p"]])
    res = await caller.recv()
    assert res[0] == wampraw.RESULT and res[1] == rid2 and res[3] == ["p"], res


@timed_combos
async def test_timeout_callee_without_call_canceling(wamp, unique, tcombo):
    """Without call_canceling the callee is not interrupted ('skip')."""
    proc = unique()
    callee = await raw_peer(wamp, combo=tcombo, roles=NO_FEATURES)
    reg = await raw_register(callee, proc)
    ping = await raw_register(callee, proc + ".ping")
    caller = await raw_peer(wamp, combo=other_combo(tcombo))
    rid = await raw_call(caller, proc, ["slow"], {"timeout": TIMEOUT_MS})
    inv = await expect_invocation(callee, reg)
    err = await caller.recv(LATE)
    assert err[:3] == [wampraw.ERROR, wampraw.CALL, rid] and err[4] == TIMEOUT, err
    # no INTERRUPT: the callee's next message is the ping
    rid2 = await raw_call(caller, proc + ".ping", ["p"])
    inv2 = await callee.recv()
    assert inv2[0] == wampraw.INVOCATION and inv2[2] == ping, f"expected the ping INVOCATION, got {inv2!r}"
    await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    await callee.send([wampraw.YIELD, inv2[1], {}, ["p"]])
    res = await caller.recv()
    assert res[0] == wampraw.RESULT and res[1] == rid2 and res[3] == ["p"], res


async def test_fast_call_with_timeout_succeeds(wamp, combo, unique):
    proc = unique()
    callee = await wamp.session()
    await callee.register(lambda x: x * 2, proc)
    caller = await wamp.session(combo=other_combo(combo))
    assert await caller.call(proc, 21, options=CallOptions(timeout=5000)) == 42
    results = await asyncio.gather(*(caller.call(proc, i, options=CallOptions(timeout=5000)) for i in range(50)))
    assert results == [i * 2 for i in range(50)]


@timed_combos
async def test_no_timeout_error_after_the_result(wamp, unique, tcombo):
    """The timer of an answered call must not fire later."""
    proc = unique()
    callee = await wamp.session(combo=tcombo)
    await callee.register(lambda: "fast", proc)

    async def slower_than_the_timeout():
        await asyncio.sleep(TIMEOUT_MS / 1000 * 2)  # wall time: let the first call's deadline pass
        return "slow"

    await callee.register(slower_than_the_timeout, proc + ".slow")
    caller = await raw_peer(wamp, combo=other_combo(tcombo))
    rid = await raw_call(caller, proc, [], {"timeout": TIMEOUT_MS})
    res = await caller.recv()
    assert res[0] == wampraw.RESULT and res[1] == rid and res[3] == ["fast"], res
    rid2 = await raw_call(caller, proc + ".slow")
    res = await caller.recv(LATE)
    assert res[0] == wampraw.RESULT and res[1] == rid2 and res[3] == ["slow"], (
        f"expected the slow call's RESULT, got {res!r} (a late timeout for call {rid}?)")


@timed_combos
async def test_timeouts_are_per_call(wamp, unique, tcombo):
    callee = SlowCallee(await wamp.session(combo=tcombo), unique())
    await callee.register()
    caller = await wamp.session(combo=other_combo(tcombo))
    patient = asyncio.ensure_future(caller.call(callee.proc, "patient"))
    assert await asyncio.wait_for(callee.started.get(), 10) == "patient"
    with pytest.raises(ApplicationError) as exc:
        await asyncio.wait_for(caller.call(callee.proc, "hasty", options=CallOptions(timeout=TIMEOUT_MS)), LATE)
    assert exc.value.error == TIMEOUT
    assert await wait_for(callee.interrupted) == "hasty"
    assert not patient.done()
    callee.release.set_result(True)
    assert await asyncio.wait_for(patient, 10) == ["done", "patient"]


@timed_combos
async def test_timeout_after_cancel_is_silent(wamp, unique, tcombo):
    """A call canceled before its deadline gets one ERROR (canceled), not a
    second one (timeout) when the deadline passes."""
    proc = unique()
    callee = await raw_peer(wamp, combo=tcombo)
    reg = await raw_register(callee, proc)
    helper = await wamp.session()

    async def slower_than_the_timeout():
        await asyncio.sleep(TIMEOUT_MS / 1000 * 2)
        return "slow"

    await helper.register(slower_than_the_timeout, proc + ".slow")
    caller = await raw_peer(wamp, combo=other_combo(tcombo))
    rid = await raw_call(caller, proc, ["x"], {"timeout": TIMEOUT_MS})
    await expect_invocation(callee, reg)
    await caller.send([CANCEL, rid, {"mode": "skip"}])
    err = await caller.recv()
    assert err[:3] == [wampraw.ERROR, wampraw.CALL, rid] and err[4] == "wamp.error.canceled", err
    rid2 = await raw_call(caller, proc + ".slow")
    res = await caller.recv(LATE)
    assert res[0] == wampraw.RESULT and res[1] == rid2, f"expected the slow call's RESULT, got {res!r}"


PROGRESS_COMBOS = [c for c in ALL_COMBOS if c.id in ("ws-json", "rs-msgpack")]


@pytest.mark.parametrize("tcombo", PROGRESS_COMBOS, ids=[c.id for c in PROGRESS_COMBOS])
async def test_timeout_runs_between_progressive_results(wamp, unique, tcombo):
    """With progressive results the timeout bounds the time to the first result
    and between results, not the whole call (spec, progressive call results,
    'Timeouts'): a stream of results each within the timeout completes even
    though it takes longer than the timeout in total."""
    proc = unique()
    callee = await wamp.session(combo=tcombo)
    step = TIMEOUT_MS / 1000 / 3
    steps = 6  # 2x the timeout in total

    async def stream(details=None):
        for i in range(steps):
            await asyncio.sleep(step)  # wall time: results spaced below the timeout
            details.progress(i)
        return "complete"

    await callee.register(stream, proc, options=RegisterOptions(details_arg="details"))
    caller = await wamp.session(combo=other_combo(tcombo))
    got = []
    try:
        result = await asyncio.wait_for(
            caller.call(proc, options=CallOptions(on_progress=got.append, timeout=TIMEOUT_MS)), LATE)
    except ApplicationError as e:
        raise AssertionError(f"call failed with {e.error} after progressive results {got} "
                             f"(each result came within {step * 1000:.0f} ms of the previous one; "
                             f"timeout {TIMEOUT_MS} ms)") from e
    assert result == "complete"
    assert got == list(range(steps))

