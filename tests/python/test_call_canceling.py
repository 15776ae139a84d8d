# Advanced Profile, call_canceling: CANCEL with mode 'skip', 'kill' and
# 'killnowait' (and without a mode), and what reaches caller and callee.
#
# Spec (rfc/text/advanced/rpc_call_canceling.md):
# - skip: ERROR wamp.error.canceled to the caller at once, no INTERRUPT; the
#   callee's late answer is discarded.
# - kill: INTERRUPT to the callee; the caller gets the callee's answer (RESULT
#   or ERROR) when it comes, not before.
# - killnowait: ERROR to the caller at once and INTERRUPT to the callee; the
#   callee's late answer is discarded.
# - a callee that did not announce call_canceling is treated as 'skip'.
#
# Autobahn|Python: cancelling the future returned by session.call() sends
# CANCEL without a mode; a cancelled Autobahn handler sees CancelledError.
# Explicit modes are sent from Autobahn through autobahn_helpers.extra_options
# (CANCEL.Options.mode) and from raw clients, which also show the exact
# message sequence. "Nothing else arrived" is checked with barrier calls: the
# dealer handles one peer's messages in order and keeps the order of what it
# sends to a peer.
import asyncio

import pytest
from autobahn.wamp import message

import wampraw
from autobahn_helpers import extra_options, wait_for
from conftest import other_combo
from raw_clients import CANCEL, INTERRUPT, NO_FEATURES, expect, expect_invocation, raw_call, raw_peer, raw_register

# a lost reply fails the test in 20 s instead of the suite-wide 60 s
pytestmark = pytest.mark.timeout(20)

CANCELED = "wamp.error.canceled"
MODES = ["skip", "kill", "killnowait"]


class SlowCallee:
    """An Autobahn callee whose procedure `proc` waits until released or
    interrupted. `interrupted` resolves when INTERRUPT cancelled a handler;
    `on_interrupt` decides what the handler then does ('raise' -> ERROR back,
    or a value -> YIELD that value)."""

    def __init__(self, session, proc, on_interrupt="raise"):
        loop = asyncio.get_running_loop()
        self.session = session
        self.proc = proc
        self.started = asyncio.Queue()
        self.interrupted = loop.create_future()
        self.release = loop.create_future()
        self.on_interrupt = on_interrupt
        self.finished = []

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
            if self.on_interrupt == "raise":
                raise
            return self.on_interrupt
        self.finished.append(x)
        return ["done", x]


async def autobahn_cancel(caller, call, mode):
    """Cancel an Autobahn call future; mode None sends CANCEL without a mode."""
    if mode is None:
        call.cancel()
    else:
        with extra_options(caller, message.Cancel, mode=mode):
            call.cancel()
            await asyncio.sleep(0)  # the canceller runs as the future's done-callback


# --------------------------------------------------------------------------
# Autobahn on both ends
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [None, "killnowait"], ids=["no-mode", "killnowait"])
async def test_autobahn_cancel_interrupts_callee(wamp, combo, unique, mode):
    callee = SlowCallee(await wamp.session(), unique())
    await callee.register()
    caller = await wamp.session(combo=other_combo(combo))
    call = asyncio.ensure_future(caller.call(callee.proc, 1))
    assert await asyncio.wait_for(callee.started.get(), 10) == 1
    await autobahn_cancel(caller, call, mode)
    assert await wait_for(callee.interrupted) == 1
    # both sessions go on working
    assert await caller.call(callee.proc + ".ping", 2) == ["ping", 2]
    assert caller.is_attached() and callee.session.is_attached()


async def test_autobahn_cancel_skip_does_not_interrupt(wamp, combo, unique):
    callee = SlowCallee(await wamp.session(), unique())
    await callee.register()
    caller = await wamp.session(combo=other_combo(combo))
    call = asyncio.ensure_future(caller.call(callee.proc, 1))
    assert await asyncio.wait_for(callee.started.get(), 10) == 1
    await autobahn_cancel(caller, call, "skip")
    # a later call through the same callee: had an INTERRUPT been sent, the
    # callee would have got it before this invocation
    assert await caller.call(callee.proc + ".ping", 2) == ["ping", 2]
    assert not callee.interrupted.done(), "skip must not interrupt the callee"
    callee.release.set_result(True)
    # the late YIELD is discarded; the callee stays and serves
    assert await caller.call(callee.proc + ".ping", 3) == ["ping", 3]
    assert callee.finished == [1]
    assert callee.session.is_attached()


async def test_autobahn_cancel_kill_returns_callee_answer(wamp, combo, unique):
    """kill: the caller waits for the interrupted callee's answer. Autobahn's
    cancelled future can't show it, so a second, raw caller cancels."""
    callee = SlowCallee(await wamp.session(), unique(), on_interrupt=["stopped early"])
    await callee.register()
    caller = await raw_peer(wamp, combo=other_combo(combo))
    rid = await raw_call(caller, callee.proc, [1])
    assert await asyncio.wait_for(callee.started.get(), 10) == 1
    await caller.send([CANCEL, rid, {"mode": "kill"}])
    assert await wait_for(callee.interrupted) == 1
    res = await expect(caller, wampraw.RESULT, what="caller after kill")
    assert res[1] == rid and res[3] == [["stopped early"]], res


# --------------------------------------------------------------------------
# raw caller, raw callee: the exact message sequence
# --------------------------------------------------------------------------


async def setup(wamp, combo, unique, callee_roles=None):
    proc = unique()
    callee = await raw_peer(wamp, roles=callee_roles)
    reg = await raw_register(callee, proc)
    ping = await raw_register(callee, proc + ".ping")
    caller = await raw_peer(wamp, combo=other_combo(combo))
    rid = await raw_call(caller, proc, ["slow"])
    inv = await expect_invocation(callee, reg)
    return proc, callee, caller, rid, inv, ping


async def ping_through(caller, callee, proc, ping, tag):
    """Caller calls proc.ping; asserts the callee's next message is that
    INVOCATION and the caller's next message its RESULT."""
    rid = await raw_call(caller, proc + ".ping", [tag])
    inv = await callee.recv()
    assert inv[0] == wampraw.INVOCATION and inv[2] == ping and inv[4] == [tag], (
        f"callee: expected the INVOCATION of ping {tag!r}, got {inv!r}")
    await callee.send([wampraw.YIELD, inv[1], {}, [tag]])
    res = await caller.recv()
    assert res[0] == wampraw.RESULT and res[1] == rid and res[3] == [tag], (
        f"caller: expected the RESULT of ping {tag!r}, got {res!r}")


def assert_canceled_error(msg, rid):
    assert msg[:3] == [wampraw.ERROR, wampraw.CALL, rid], f"expected ERROR for CALL {rid}, got {msg!r}"
    assert isinstance(msg[3], dict), msg
    assert msg[4] == CANCELED, msg


@pytest.mark.parametrize("late", ["yield", "error"])
async def test_skip(wamp, combo, unique, late):
    proc, callee, caller, rid, inv, ping = await setup(wamp, combo, unique)
    await caller.send([CANCEL, rid, {"mode": "skip"}])
    assert_canceled_error(await caller.recv(), rid)
    # no INTERRUPT: the callee's next message is the ping
    await ping_through(caller, callee, proc, ping, "after cancel")
    # the late answer is discarded (the caller's next message is the next ping)
    if late == "yield":
        await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    else:
        await callee.send([wampraw.ERROR, wampraw.INVOCATION, inv[1], {}, "com.example.late"])
    await ping_through(caller, callee, proc, ping, "after late answer")


@pytest.mark.parametrize("answer", ["yield", "error"])
async def test_kill(wamp, combo, unique, answer):
    proc, callee, caller, rid, inv, ping = await setup(wamp, combo, unique)
    await caller.send([CANCEL, rid, {"mode": "kill"}])
    interrupt = await expect(callee, INTERRUPT, what="callee after CANCEL kill")
    assert interrupt[1] == inv[1], interrupt
    assert interrupt[2].get("mode") == "kill", interrupt
    # the caller gets nothing for the killed call until the callee answers:
    # a ping answered meanwhile arrives first
    await ping_through(caller, callee, proc, ping, "while killing")
    if answer == "yield":
        await callee.send([wampraw.YIELD, inv[1], {}, ["finished anyway"]])
        res = await expect(caller, wampraw.RESULT, what="caller after the callee's YIELD")
        assert res[1] == rid and res[3] == ["finished anyway"], res
    else:
        await callee.send([wampraw.ERROR, wampraw.INVOCATION, inv[1], {}, CANCELED, ["interrupted"]])
        err = await caller.recv()
        assert_canceled_error(err, rid)
        assert err[5:6] == [["interrupted"]], err
    await ping_through(caller, callee, proc, ping, "after")


@pytest.mark.parametrize("mode_options", [{"mode": "killnowait"}, {}], ids=["killnowait", "no-mode"])
async def test_killnowait(wamp, combo, unique, mode_options):
    proc, callee, caller, rid, inv, ping = await setup(wamp, combo, unique)
    await caller.send([CANCEL, rid, mode_options])
    assert_canceled_error(await caller.recv(), rid)
    interrupt = await expect(callee, INTERRUPT, what="callee after CANCEL killnowait")
    assert interrupt[1] == inv[1], interrupt
    assert interrupt[2].get("mode") == "killnowait", interrupt
    # any answer to the interrupted invocation is discarded
    await callee.send([wampraw.ERROR, wampraw.INVOCATION, inv[1], {}, CANCELED])
    await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    await ping_through(caller, callee, proc, ping, "after")


@pytest.mark.parametrize("mode", MODES)
async def test_callee_without_call_canceling_is_skip(wamp, combo, unique, mode):
    proc, callee, caller, rid, inv, ping = await setup(wamp, combo, unique, callee_roles=NO_FEATURES)
    await caller.send([CANCEL, rid, {"mode": mode}])
    assert_canceled_error(await caller.recv(), rid)
    await ping_through(caller, callee, proc, ping, "no interrupt")
    await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    await ping_through(caller, callee, proc, ping, "after late answer")


@pytest.mark.parametrize("mode", MODES)
async def test_cancel_after_result_is_ignored(wamp, combo, unique, mode):
    proc, callee, caller, rid, inv, ping = await setup(wamp, combo, unique)
    await callee.send([wampraw.YIELD, inv[1], {}, ["done"]])
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid and res[3] == ["done"], res
    await caller.send([CANCEL, rid, {"mode": mode}])
    await ping_through(caller, callee, proc, ping, "after")


async def test_cancel_twice(wamp, combo, unique):
    proc, callee, caller, rid, inv, ping = await setup(wamp, combo, unique)
    await caller.send([CANCEL, rid, {"mode": "killnowait"}])
    await caller.send([CANCEL, rid, {"mode": "killnowait"}])
    assert_canceled_error(await caller.recv(), rid)
    interrupt = await expect(callee, INTERRUPT)
    assert interrupt[1] == inv[1], interrupt
    # only one ERROR and one INTERRUPT
    await ping_through(caller, callee, proc, ping, "after")


async def test_cancel_one_of_several_calls(wamp, combo, unique):
    proc = unique()
    callee = await raw_peer(wamp)
    reg = await raw_register(callee, proc)
    caller = await raw_peer(wamp, combo=other_combo(combo))
    rids = [await raw_call(caller, proc, [i]) for i in range(3)]
    invs = [await expect_invocation(callee, reg) for _ in range(3)]
    assert [i[4] for i in invs] == [[0], [1], [2]]
    await caller.send([CANCEL, rids[1], {"mode": "killnowait"}])
    assert_canceled_error(await caller.recv(), rids[1])
    interrupt = await expect(callee, INTERRUPT)
    assert interrupt[1] == invs[1][1], interrupt
    for i in (2, 0):
        await callee.send([wampraw.YIELD, invs[i][1], {}, [f"r{i}"]])
        res = await expect(caller, wampraw.RESULT)
        assert res[1] == rids[i] and res[3] == [f"r{i}"], res


async def test_autobahn_callee_gets_interrupt_from_raw_cancel(wamp, combo, unique):
    """An Autobahn callee announces call_canceling: killnowait cancels its handler."""
    callee = SlowCallee(await wamp.session(), unique())
    await callee.register()
    caller = await raw_peer(wamp, combo=other_combo(combo))
    rid = await raw_call(caller, callee.proc, [7])
    assert await asyncio.wait_for(callee.started.get(), 10) == 7
    await caller.send([CANCEL, rid, {"mode": "killnowait"}])
    assert_canceled_error(await caller.recv(), rid)
    assert await wait_for(callee.interrupted) == 7
    # Autobahn answers the interrupted invocation with an ERROR, which the
    # dealer discards; the caller's next message is the next call's RESULT
    rid2 = await raw_call(caller, callee.proc + ".ping", [8])
    res = await caller.recv()
    assert res[0] == wampraw.RESULT and res[1] == rid2 and res[3] == [["ping", 8]], res
    assert callee.session.is_attached()


async def test_cancel_with_shared_registration_interrupts_the_right_callee(wamp, combo, unique):
    proc = unique()
    callees = [await raw_peer(wamp), await raw_peer(wamp, combo=other_combo(combo))]
    for c in callees:
        reg = await raw_register(c, proc, {"invoke": "roundrobin"})
    barrier = [await raw_register(c, f"{proc}_b{i}") for i, c in enumerate(callees)]
    caller = await raw_peer(wamp)
    rids = [await raw_call(caller, proc, [i]) for i in range(2)]
    invs = [await expect_invocation(c, reg) for c in callees]
    idx = 0 if invs[0][4] == [1] else 1  # the callee serving call 1
    await caller.send([CANCEL, rids[1], {"mode": "killnowait"}])
    assert_canceled_error(await caller.recv(), rids[1])
    interrupt = await expect(callees[idx], INTERRUPT)
    assert interrupt[1] == invs[idx][1], interrupt
    # the other callee was not interrupted: its next message is a barrier call
    other = 1 - idx
    brid = await raw_call(caller, f"{proc}_b{other}", ["b"])
    b = await expect_invocation(callees[other], barrier[other])
    await callees[other].send([wampraw.YIELD, b[1], {}, ["b"]])
    await callees[other].send([wampraw.YIELD, invs[other][1], {}, ["r0"]])
    got = sorted([await expect(caller, wampraw.RESULT) for _ in range(2)], key=lambda m: m[1])
    assert [(m[1], m[3]) for m in got] == sorted([(brid, ["b"]), (rids[0], ["r0"])]), got

