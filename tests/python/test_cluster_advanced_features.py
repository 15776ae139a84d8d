# Advanced Profile dealer / broker features with the peers on different nodes
# of one 3-node Junction cluster (real `junction` processes on 127.0.0.1, one
# cluster shared by the module):
#
# - shared registrations: 'first', 'last', 'roundrobin' over callees on three nodes
# - pattern-based registration (precedence, INVOCATION.Details.procedure) and
#   pattern-based subscription (one EVENT per matching subscription, Details.topic)
# - caller identification (disclose_me on CALL, disclose_caller on REGISTER) and
#   publisher identification (disclose_me on PUBLISH)
# - black/white listing by authid and authrole (session ids: test_cluster_routing)
# - progressive call results (and the caller leaving mid-stream), call canceling
#   (skip / kill / killnowait), call timeout, progressive call invocations -
#   callee on node 2, caller on node 1, raw clients showing the exact messages
# - event retention across nodes
# - meta API across nodes: registration / subscription ids, lists, lookups and
#   callees are cluster-wide; meta events reach subscribers on other nodes;
#   list_subscribers / count_subscribers are cluster-wide too (asked of every
#   node, src/router/query.rs)
# - testaments and payload passthru mode across nodes
#
# A node answers REGISTER/SUBSCRIBE once the change is applied on itself; the
# other nodes apply it within the replication lag, so a test that acts on
# another node first waits with `cluster.sync()` (every live node applied the
# leader's commit index), never with a sleep.
#
# Feature tests run over four transport x serializer pairs (`tcombo`: both
# transports, json and msgpack), the peer on the other node using another
# transport and serializer (other_combo).
#
# Node logs: target/test-logs/cluster/test_cluster_advanced_features/node<N>.stderr.log.
import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, PublishOptions, RegisterOptions, SubscribeOptions

import wampraw
from autobahn_helpers import EventLog, call, call_with, leave, publish_with, register_with, subscribe_log
from cluster_helpers import module_cluster
from conftest import TIMED_COMBOS, Wamp, other_combo, timed_combos
from raw_clients import (ALL_CLIENT_FEATURES, CANCEL, INTERRUPT, PPT_CLIENT_FEATURES, expect, expect_invocation,
                         raw_on, raw_register, raw_subscribe, same_binary, wire_binary)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def cluster():
    yield from module_cluster("test_cluster_advanced_features")


@pytest.fixture
async def cw(cluster, request):
    """Connections to any node: cw.session(router=cluster[i]); default pair = tcombo."""
    combo = request.getfixturevalue("tcombo") if "tcombo" in request.fixturenames else TIMED_COMBOS[0]
    w = Wamp(cluster[1], combo)
    yield w
    await w.close()


def show(details):
    """EventDetails as a dict, for assertion messages (it has __slots__)."""
    return {k: getattr(details, k, None) for k in ("subscription", "publication", "publisher", "topic", "retained")}


async def on(cw, cluster, node, other=False):
    """An Autobahn session on `node` (the test's combo, or other_combo)."""
    return await cw.session(router=cluster[node], combo=other_combo(cw.combo) if other else None)


async def raw(cw, cluster, node, other=False, roles=None):
    return await raw_on(cw, router=cluster[node], combo=other_combo(cw.combo) if other else None, roles=roles)


# --------------------------------------------------------------------------
# shared registrations
# --------------------------------------------------------------------------


async def shared(cw, cluster, proc, invoke, nodes):
    """One callee per node in `nodes` (registered in that order); each answers its node."""
    callees, regs = [], []
    for i, node in enumerate(nodes):
        s = await on(cw, cluster, node, other=i % 2 == 1)
        regs.append(await s.register(lambda node=node: node, proc, options=RegisterOptions(invoke=invoke)))
        callees.append(s)
    assert len({r.id for r in regs}) == 1, [r.id for r in regs]
    await cluster.sync()
    return callees, regs


@timed_combos
async def test_first_across_nodes(cluster, cw, unique, tcombo):
    proc = unique()
    callees, regs = await shared(cw, cluster, proc, "first", [2, 3, 1])
    caller = await on(cw, cluster, 1)
    assert [await call(caller, proc) for _ in range(4)] == [2] * 4
    caller3 = await on(cw, cluster, 3, other=True)
    assert [await call(caller3, proc) for _ in range(2)] == [2] * 2
    await regs[0].unregister()
    await cluster.sync()
    assert [await call(caller, proc) for _ in range(3)] == [3] * 3
    await regs[1].unregister()
    await cluster.sync()
    assert await call(caller3, proc) == 1


@timed_combos
async def test_last_across_nodes(cluster, cw, unique, tcombo):
    proc = unique()
    callees, regs = await shared(cw, cluster, proc, "last", [3, 1, 2])
    caller = await on(cw, cluster, 1)
    assert [await call(caller, proc) for _ in range(4)] == [2] * 4
    await regs[2].unregister()
    await cluster.sync()
    assert [await call(caller, proc) for _ in range(3)] == [1] * 3
    # a callee registering later on node 3 becomes the last one
    late = await on(cw, cluster, 3)
    await late.register(lambda: "late", proc, options=RegisterOptions(invoke="last"))
    await cluster.sync()
    assert await call(caller, proc) == "late"


@timed_combos
async def test_roundrobin_order_across_nodes(cluster, cw, unique, tcombo):
    proc = unique()
    await shared(cw, cluster, proc, "roundrobin", [2, 3, 1])
    caller = await on(cw, cluster, 1, other=True)
    picks = [await call(caller, proc) for _ in range(9)]
    start = picks.index(2)
    order = [2, 3, 1]
    assert picks == [order[(i + start) % 3] for i in range(9)] or picks == (order * 3), picks
    assert [picks.count(n) for n in (1, 2, 3)] == [3, 3, 3], picks


# --------------------------------------------------------------------------
# pattern-based registration / subscription
# --------------------------------------------------------------------------


@timed_combos
async def test_pattern_registration_across_nodes(cluster, cw, unique, tcombo):
    base, other = unique(), unique()
    seen = asyncio.Queue()

    def handler(tag):
        def h(*args, details=None):
            seen.put_nowait((tag, details.procedure, list(args)))
            return tag
        return h

    s1, s2, s3 = await on(cw, cluster, 1), await on(cw, cluster, 2, other=True), await on(cw, cluster, 3)
    await s2.register(handler("prefix@2"), base, options=RegisterOptions(match="prefix", details_arg="details"))
    await s3.register(handler("prefix.a@3"), base + ".a",
                      options=RegisterOptions(match="prefix", details_arg="details"))
    await s1.register(handler("exact@1"), base + ".a.b", options=RegisterOptions(details_arg="details"))
    await s3.register(handler("wild@3"), other + "..end",
                      options=RegisterOptions(match="wildcard", details_arg="details"))
    await cluster.sync()
    caller = await on(cw, cluster, 1, other=True)
    caller3 = await on(cw, cluster, 3)
    cases = [
        (base + ".a.b", "exact@1", base + ".a.b"),  # Autobahn fills in the registered URI
        (base + ".a.b.c", "prefix.a@3", base + ".a.b.c"),
        (base + ".a.x", "prefix.a@3", base + ".a.x"),
        (base + ".z", "prefix@2", base + ".z"),
        (other + ".q.end", "wild@3", other + ".q.end"),
    ]
    # exact: the INVOCATION carries no Details.procedure (Autobahn shows the
    # registered URI then); pattern: the concrete URI
    for c in (caller, caller3):
        for uri, tag, procedure in cases:
            assert await call(c, uri, 7) == tag, uri
            got = await asyncio.wait_for(seen.get(), 10)
            assert got == (tag, procedure, [7]), (uri, got)
        with pytest.raises(ApplicationError) as exc:
            await call(c, other + ".q.notend")
        assert exc.value.error == "wamp.error.no_such_procedure"


@timed_combos
async def test_pattern_subscription_across_nodes(cluster, cw, unique, tcombo):
    base = unique()
    s2 = await on(cw, cluster, 2, other=True)
    s3 = await on(cw, cluster, 3)
    s1 = await on(cw, cluster, 1)
    prefix = await subscribe_log(s2, base, match="prefix")
    wild = await subscribe_log(s2, base + "..end", match="wildcard")  # the same session, overlapping
    wild3 = await subscribe_log(s3, base + "..end", match="wildcard")
    exact = await subscribe_log(s1, base + ".a.end")
    await cluster.sync()
    publisher = await on(cw, cluster, 1, other=True)
    pub = await publisher.publish(base + ".a.end", "x", options=PublishOptions(acknowledge=True))
    for log in (prefix, wild, wild3):
        args, _, details = await log.get()
        assert args == ["x"] and details.topic == base + ".a.end" and details.publication == pub.id, show(details)
        assert details.subscription.id == log.subscription.id
    args, _, details = await exact.get()
    # (Autobahn shows the subscribed URI as the topic of an exact subscription)
    assert args == ["x"] and details.topic == base + ".a.end", show(details)
    # a topic only the prefix matches; barrier afterwards on the exact topic
    await publisher.publish(base + ".b.c", "y", options=PublishOptions(acknowledge=True))
    args, _, details = await prefix.get()
    assert args == ["y"] and details.topic == base + ".b.c"
    await publisher.publish(base + ".a.end", "barrier", options=PublishOptions(acknowledge=True))
    for log in (prefix, wild, wild3, exact):
        assert (await log.get())[0] == ["barrier"]


# --------------------------------------------------------------------------
# identification
# --------------------------------------------------------------------------


@timed_combos
async def test_caller_identification_across_nodes(cluster, cw, unique, tcombo):
    proc, proc_dc = unique(), unique()
    callee = await on(cw, cluster, 2, other=True)
    await callee.register(lambda details=None: [details.caller, details.caller_authid, details.caller_authrole],
                          proc, options=RegisterOptions(details_arg="details"))
    callee3 = await on(cw, cluster, 3)
    await register_with(callee3, {"disclose_caller": True},
                        lambda details=None: [details.caller, details.caller_authid, details.caller_authrole],
                        proc_dc, options=RegisterOptions(details_arg="details"))
    await cluster.sync()
    caller = await on(cw, cluster, 1)
    me = [caller.session_id, caller.joined.result().authid, caller.joined.result().authrole]
    assert await call(caller, proc) == [None, None, None]
    assert await asyncio.wait_for(call_with(caller, {"disclose_me": True}, proc), 10) == me
    # disclose_caller on the registration: disclosed without the caller asking
    assert await call(caller, proc_dc) == me


@timed_combos
async def test_publisher_identification_across_nodes(cluster, cw, unique, tcombo):
    topic = unique()
    log = await subscribe_log(await on(cw, cluster, 3, other=True), topic)
    await cluster.sync()
    publisher = await on(cw, cluster, 1)
    me = (publisher.session_id, publisher.joined.result().authid, publisher.joined.result().authrole)
    await publisher.publish(topic, "anon", options=PublishOptions(acknowledge=True))
    _, _, d = await log.get()
    assert (d.publisher, d.publisher_authid, d.publisher_authrole) == (None, None, None)
    await asyncio.wait_for(publish_with(publisher, {"disclose_me": True}, topic, "named",
                                        options=PublishOptions(acknowledge=True)), 10)
    args, _, d = await log.get()
    assert args == ["named"] and (d.publisher, d.publisher_authid, d.publisher_authrole) == me


# --------------------------------------------------------------------------
# black/white listing by authid / authrole
# --------------------------------------------------------------------------


async def test_blackwhite_authid_authrole_across_nodes(cluster, cw, unique):
    topic = unique()
    placement = [2, 3, 2, 1]
    subscribers, logs = [], []
    for i, node in enumerate(placement):
        s = await on(cw, cluster, node, other=i % 2 == 1)
        logs.append(await subscribe_log(s, topic))
        subscribers.append(s)
    publisher = await on(cw, cluster, 1)
    await cluster.sync()
    authids = [s.joined.result().authid for s in subscribers]
    assert len(set(authids)) == 4

    async def receivers(**options):
        await publisher.publish(topic, "restricted", options=PublishOptions(acknowledge=True, **options))
        await publisher.publish(topic, "barrier", options=PublishOptions(acknowledge=True))
        got = []
        for i, log in enumerate(logs):
            args, _, _ = await log.get()
            if args == ["restricted"]:
                got.append(i)
                args, _, _ = await log.get()
            assert args == ["barrier"], (i, args)
        return got

    assert await receivers(exclude_authid=[authids[0]]) == [1, 2, 3]
    assert await receivers(exclude_authid=[authids[1], authids[3]]) == [0, 2]
    assert await receivers(eligible_authid=[authids[2]]) == [2]
    assert await receivers(eligible_authid=[authids[0], authids[1]], exclude_authid=[authids[1]]) == [0]
    assert await receivers(eligible_authrole=["anonymous"]) == [0, 1, 2, 3]
    assert await receivers(eligible_authrole=["admin"]) == []
    assert await receivers(exclude_authrole=["anonymous"]) == []
    assert await receivers(exclude_authrole=["admin"], exclude=[subscribers[3].session_id]) == [0, 1, 2]
    assert await receivers(eligible=[subscribers[1].session_id, subscribers[2].session_id],
                           eligible_authid=[authids[2], authids[3]]) == [2]


# --------------------------------------------------------------------------
# progressive results, canceling, timeout, progressive invocations (raw)
# --------------------------------------------------------------------------


async def callee_and_caller(cw, cluster, unique, callee_roles=None):
    """Raw callee on node 2 (proc and proc.ping), raw caller on node 1."""
    proc = unique()
    callee = await raw(cw, cluster, 2, roles=callee_roles)
    reg = await raw_register(callee, proc)
    ping = await raw_register(callee, proc + ".ping")
    await cluster.sync()
    caller = await raw(cw, cluster, 1, other=True)
    return proc, callee, reg, ping, caller


async def ping_through(caller, callee, proc, ping, tag):
    """Barrier: the callee's next message is the ping INVOCATION, the caller's next its RESULT."""
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {}, proc + ".ping", [tag]])
    inv = await callee.recv()
    assert inv[0] == wampraw.INVOCATION and inv[2] == ping and inv[4] == [tag], (
        f"callee: expected the INVOCATION of ping {tag!r}, got {inv!r}")
    await callee.send([wampraw.YIELD, inv[1], {}, [tag]])
    res = await caller.recv()
    assert res[0] == wampraw.RESULT and res[1] == rid and res[3] == [tag], (
        f"caller: expected the RESULT of ping {tag!r}, got {res!r}")


def assert_error(msg, rid, uri):
    assert msg[:3] == [wampraw.ERROR, wampraw.CALL, rid], f"expected ERROR for CALL {rid}, got {msg!r}"
    assert msg[4] == uri, msg


@timed_combos
async def test_progressive_results_on_the_wire_across_nodes(cluster, cw, unique, tcombo):
    proc, callee, reg, ping, caller = await callee_and_caller(cw, cluster, unique)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"receive_progress": True}, proc, [3]])
    inv = await expect_invocation(callee, reg)
    assert inv[3].get("receive_progress") is True, inv
    for i in range(3):
        await callee.send([wampraw.YIELD, inv[1], {"progress": True}, [i], {"sq": i * i}])
    await callee.send([wampraw.YIELD, inv[1], {}, ["done"]])
    for i in range(3):
        res = await expect(caller, wampraw.RESULT)
        assert res[1] == rid and res[2].get("progress") is True and res[3:] == [[i], {"sq": i * i}], res
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid and not res[2].get("progress") and res[3] == ["done"], res
    await ping_through(caller, callee, proc, ping, "after")


@pytest.mark.parametrize("how", ["goodbye", "abort"])
async def test_caller_leaving_mid_stream_across_nodes(cluster, cw, unique, how):
    proc, callee, reg, ping, caller = await callee_and_caller(cw, cluster, unique)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"receive_progress": True}, proc, []])
    inv = await expect_invocation(callee, reg)
    await callee.send([wampraw.YIELD, inv[1], {"progress": True}, [0]])
    res = await expect(caller, wampraw.RESULT)
    assert res[2].get("progress") is True, res
    if how == "goodbye":
        await caller.send([wampraw.GOODBYE, {}, "wamp.close.close_realm"])
    else:
        caller.abort()
    interrupt = await expect(callee, INTERRUPT, what="callee after the caller left")
    assert interrupt[1] == inv[1] and interrupt[2].get("mode") == "killnowait", interrupt
    # late progress / final answers are discarded; the callee keeps serving
    await callee.send([wampraw.YIELD, inv[1], {"progress": True}, [1]])
    await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    await ping_through(await raw(cw, cluster, 3), callee, proc, ping, "after")


@timed_combos
@pytest.mark.parametrize("mode", ["skip", "kill", "killnowait"])
async def test_cancel_across_nodes(cluster, cw, unique, tcombo, mode):
    proc, callee, reg, ping, caller = await callee_and_caller(cw, cluster, unique)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {}, proc, ["slow"]])
    inv = await expect_invocation(callee, reg)
    await caller.send([CANCEL, rid, {"mode": mode}])
    if mode == "skip":
        assert_error(await caller.recv(), rid, "wamp.error.canceled")
        # no INTERRUPT: the callee's next message is the ping
        await ping_through(caller, callee, proc, ping, "after cancel")
        await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    elif mode == "kill":
        interrupt = await expect(callee, INTERRUPT, what="callee after CANCEL kill")
        assert interrupt[1] == inv[1] and interrupt[2].get("mode") == "kill", interrupt
        # the caller waits for the callee's answer: a ping answered meanwhile comes first
        await ping_through(caller, callee, proc, ping, "while killing")
        await callee.send([wampraw.ERROR, wampraw.INVOCATION, inv[1], {}, "wamp.error.canceled", ["stopped"]])
        err = await caller.recv()
        assert_error(err, rid, "wamp.error.canceled")
        assert err[5:6] == [["stopped"]], err
    else:
        assert_error(await caller.recv(), rid, "wamp.error.canceled")
        interrupt = await expect(callee, INTERRUPT, what="callee after CANCEL killnowait")
        assert interrupt[1] == inv[1] and interrupt[2].get("mode") == "killnowait", interrupt
        await callee.send([wampraw.ERROR, wampraw.INVOCATION, inv[1], {}, "wamp.error.canceled"])
    # late answers are discarded
    await ping_through(caller, callee, proc, ping, "after")


@timed_combos
async def test_timeout_across_nodes(cluster, cw, unique, tcombo):
    proc, callee, reg, ping, caller = await callee_and_caller(cw, cluster, unique)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, {"timeout": 150}, proc, ["slow"]])
    inv = await expect_invocation(callee, reg)
    err = await caller.recv(5)
    assert_error(err, rid, "wamp.error.timeout")
    assert loop.time() - t0 >= 0.14, loop.time() - t0
    interrupt = await expect(callee, INTERRUPT, what="callee after the timeout")
    assert interrupt[1] == inv[1] and interrupt[2].get("mode") == "killnowait", interrupt
    await callee.send([wampraw.YIELD, inv[1], {}, ["late"]])
    await ping_through(caller, callee, proc, ping, "after")


async def test_timeout_autobahn_across_nodes(cluster, cw, unique):
    proc = unique()
    callee = await on(cw, cluster, 2)
    interrupted = asyncio.get_running_loop().create_future()

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.set_result(True)
            raise

    await callee.register(slow, proc)
    await cluster.sync()
    caller = await on(cw, cluster, 1, other=True)
    with pytest.raises(ApplicationError) as exc:
        await call(caller, proc, options=CallOptions(timeout=150))
    assert exc.value.error == "wamp.error.timeout"
    assert await asyncio.wait_for(interrupted, 10) is True


@timed_combos
async def test_progressive_invocations_across_nodes(cluster, cw, unique, tcombo):
    proc, callee, reg, ping, caller = await callee_and_caller(cw, cluster, unique)
    rid = caller.request_id()
    inv_ids = set()
    for i in range(3):
        await caller.send([wampraw.CALL, rid, {"progress": True}, proc, ["chunk", i]])
        inv = await expect_invocation(callee, reg)
        assert inv[3].get("progress") is True and inv[4] == ["chunk", i], inv
        inv_ids.add(inv[1])
    await caller.send([wampraw.CALL, rid, {}, proc, ["last"]])
    inv = await expect_invocation(callee, reg)
    assert not inv[3].get("progress") and inv[4] == ["last"], inv
    inv_ids.add(inv[1])
    assert len(inv_ids) == 1, inv_ids
    await callee.send([wampraw.YIELD, inv[1], {}, ["got", 4]])
    res = await expect(caller, wampraw.RESULT)
    assert res[1] == rid and res[3] == ["got", 4], res
    await ping_through(caller, callee, proc, ping, "after")


# --------------------------------------------------------------------------
# retention, testaments, payload passthru across nodes
# --------------------------------------------------------------------------


@timed_combos
async def test_retention_across_nodes(cluster, cw, unique, tcombo):
    base = unique()
    publisher = await on(cw, cluster, 1)
    for topic, v in ((base + ".a", "a1"), (base + ".a", "a2"), (base + ".b", "b")):
        await publisher.publish(topic, v, options=PublishOptions(acknowledge=True, retain=True))
    await cluster.sync()
    log3 = await subscribe_log(await on(cw, cluster, 3, other=True), base + ".a", get_retained=True)
    args, _, details = await log3.get()
    assert args == ["a2"] and details.retained is True, (args, show(details))
    log2 = await subscribe_log(await on(cw, cluster, 2), base, match="prefix", get_retained=True)
    got = {}
    for _ in range(2):
        args, _, details = await log2.get()
        assert details.retained is True
        got[details.topic] = args
    assert got == {base + ".a": ["a2"], base + ".b": ["b"]}, got
    await cluster.sync()
    await publisher.publish(base + ".a", "barrier", options=PublishOptions(acknowledge=True))
    for log in (log3, log2):
        args, _, details = await log.get()
        assert args == ["barrier"] and not details.retained


async def test_testament_across_nodes(cluster, cw, unique):
    topic = unique()
    watcher = await on(cw, cluster, 3)
    log = EventLog()
    opts = SubscribeOptions(details_arg="details")
    await watcher.subscribe(log, topic, options=opts)
    await watcher.subscribe(log, "wamp.session.on_leave", options=opts)
    await cluster.sync()
    testator = await on(cw, cluster, 2, other=True)
    tid = testator.session_id
    await call(testator, "wamp.session.add_testament", topic, ["gone", 1], {"k": "v"})
    await call(testator, "wamp.session.add_testament", topic, ["detached"], {}, scope="detached")
    testator.abort_transport()
    got = []
    while True:
        args, kwargs, _ = await log.get()
        if args and args[0] == tid and len(args) == 3:
            break  # on_leave of the testator
        got.append((args, kwargs))
    assert got == [(["detached"], {}), (["gone", 1], {"k": "v"})], got


PPT = {"ppt_scheme": "wamp.eth", "ppt_serializer": "cbor", "ppt_cipher": "xsalsa20poly1305", "ppt_keyid": "k1"}


@timed_combos
async def test_ppt_across_nodes(cluster, cw, unique, tcombo):
    proc = unique()
    callee = await raw(cw, cluster, 2, roles=PPT_CLIENT_FEATURES)
    reg = await raw_register(callee, proc)
    await cluster.sync()
    caller = await raw(cw, cluster, 1, other=True, roles=PPT_CLIENT_FEATURES)
    data = bytes(range(256))
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, dict(PPT), proc, [wire_binary(caller.serializer, data)]])
    inv = await expect_invocation(callee, reg)
    assert {k: v for k, v in inv[3].items() if k.startswith("ppt_")} == PPT, inv
    assert same_binary(callee.serializer, inv[4][0], data) and len(inv[4]) == 1, inv
    await callee.send([wampraw.YIELD, inv[1], dict(PPT), [wire_binary(callee.serializer, data[::-1])]])
    res = await expect(caller, wampraw.RESULT)
    assert {k: v for k, v in res[2].items() if k.startswith("ppt_")} == PPT, res
    assert same_binary(caller.serializer, res[3][0], data[::-1]), res
    # pub/sub: subscriber on node 3
    topic = unique()
    sub = await raw(cw, cluster, 3, roles=PPT_CLIENT_FEATURES)
    await raw_subscribe(sub, topic)
    await cluster.sync()
    await caller.send([wampraw.PUBLISH, caller.request_id(), dict(PPT), topic, [wire_binary(caller.serializer, data)]])
    ev = await expect(sub, wampraw.EVENT)
    assert {k: v for k, v in ev[3].items() if k.startswith("ppt_")} == PPT, ev
    assert same_binary(sub.serializer, ev[4][0], data), ev


async def test_ppt_to_a_remote_callee_without_the_feature(cluster, cw, unique):
    proc = unique()
    callee = await raw(cw, cluster, 2, roles=ALL_CLIENT_FEATURES)
    reg = await raw_register(callee, proc)
    await cluster.sync()
    caller = await raw(cw, cluster, 1, other=True, roles=PPT_CLIENT_FEATURES)
    rid = caller.request_id()
    await caller.send([wampraw.CALL, rid, dict(PPT), proc, [wire_binary(caller.serializer, b"secret")]])
    # whichever comes first: the caller's answer or something reaching the callee
    to_caller = asyncio.ensure_future(caller.recv(10))
    to_callee = asyncio.ensure_future(callee.recv(10))
    done, _ = await asyncio.wait([to_caller, to_callee], return_when=asyncio.FIRST_COMPLETED)
    if to_callee in done:
        to_caller.cancel()
        pytest.fail(f"a callee without payload_passthru_mode (node 2) got {to_callee.result()!r}; "
                    f"the caller (node 1) should have got ERROR wamp.error.feature_not_supported")
    to_callee.cancel()
    assert_error(to_caller.result(), rid, "wamp.error.feature_not_supported")
    # the callee got no INVOCATION: its next one is a plain call's
    rid2 = caller.request_id()
    await caller.send([wampraw.CALL, rid2, {}, proc, ["plain"]])
    inv = await expect_invocation(callee, reg)
    assert inv[4] == ["plain"] and "ppt_scheme" not in inv[3], inv


# --------------------------------------------------------------------------
# meta API across nodes
# --------------------------------------------------------------------------


async def test_subscription_meta_api_across_nodes(cluster, cw, unique):
    base = unique()
    observer = await on(cw, cluster, 1)
    events = await subscribe_log(observer, "wamp.subscription.", match="prefix")
    await cluster.sync()
    s2 = await on(cw, cluster, 2, other=True)
    s3 = await on(cw, cluster, 3)
    ex2 = await s2.subscribe(lambda *a: None, base + ".t")
    ex3 = await s3.subscribe(lambda *a: None, base + ".t")
    assert ex2.id == ex3.id
    pre3 = await s3.subscribe(lambda *a: None, base, options=SubscribeOptions(match="prefix"))
    wc2 = await s2.subscribe(lambda *a: None, base + "..t", options=SubscribeOptions(match="wildcard"))
    await cluster.sync()
    lists = await call(observer, "wamp.subscription.list")
    assert ex2.id in lists["exact"] and pre3.id in lists["prefix"] and wc2.id in lists["wildcard"], lists
    assert await call(observer, "wamp.subscription.lookup", base + ".t") == ex2.id
    assert await call(observer, "wamp.subscription.lookup", base, {"match": "prefix"}) == pre3.id
    assert sorted(await call(observer, "wamp.subscription.match", base + ".t")) == sorted([ex2.id, pre3.id])
    assert sorted(await call(observer, "wamp.subscription.match", base + ".x.t")) == sorted([pre3.id, wc2.id])
    d = await call(observer, "wamp.subscription.get", wc2.id)
    assert d["id"] == wc2.id and d["uri"] == base + "..t" and d["match"] == "wildcard", d
    # list_subscribers / count_subscribers answer the subscribers on every node
    both = sorted([s2.session_id, s3.session_id])
    assert sorted(await call(s2, "wamp.subscription.list_subscribers", ex2.id)) == both
    assert sorted(await call(observer, "wamp.subscription.list_subscribers", ex2.id)) == both
    assert await call(s3, "wamp.subscription.count_subscribers", ex2.id) == 2
    assert await call(observer, "wamp.subscription.count_subscribers", pre3.id) == 1
    # meta events published on nodes 2 and 3 reach the observer on node 1
    ids = {s2.session_id: 2, s3.session_id: 3}
    seen = []
    while len(seen) < 6:
        try:
            args, _, details = await asyncio.wait_for(events.get(), 5)
        except asyncio.TimeoutError:
            raise AssertionError(f"meta events seen so far: {seen}")
        if args and args[0] in ids:
            seen.append((details.topic, ids[args[0]], args[1]["id"] if isinstance(args[1], dict) else args[1]))
    # events of one node arrive in the order published; nodes 2 and 3 use separate links
    assert [e for e in seen if e[1] == 2 and e[2] == ex2.id] == [
        ("wamp.subscription.on_create", 2, ex2.id), ("wamp.subscription.on_subscribe", 2, ex2.id)], seen
    assert [e for e in seen if e[1] == 3 and e[2] == ex2.id] == [("wamp.subscription.on_subscribe", 3, ex2.id)], seen
    assert ("wamp.subscription.on_create", 3, pre3.id) in seen and ("wamp.subscription.on_create", 2, wc2.id) in seen
    # the subscription ends on node 3, then node 2: on_delete comes from node 2 only
    await ex3.unsubscribe()
    await ex2.unsubscribe()
    tail = []
    while len(tail) < 3:
        args, _, details = await events.get()
        if args and args[0] in ids and args[1] == ex2.id:
            tail.append((details.topic, ids[args[0]]))
    assert [t for t in tail if t[1] == 3] == [("wamp.subscription.on_unsubscribe", 3)], tail
    assert [t for t in tail if t[1] == 2] == [("wamp.subscription.on_unsubscribe", 2),
                                              ("wamp.subscription.on_delete", 2)], tail
    await cluster.sync()
    assert await call(observer, "wamp.subscription.lookup", base + ".t") is None
    with pytest.raises(ApplicationError) as exc:
        await call(observer, "wamp.subscription.get", ex2.id)
    assert exc.value.error == "wamp.error.no_such_subscription"


async def test_registration_meta_api_across_nodes(cluster, cw, unique):
    base = unique()
    c2 = await on(cw, cluster, 2)
    c3 = await on(cw, cluster, 3, other=True)
    pre = await c2.register(lambda: None, base, options=RegisterOptions(match="prefix"))
    wc = await c3.register(lambda: None, base + "..z", options=RegisterOptions(match="wildcard"))
    sh = [await c.register(lambda: None, base + ".sh", options=RegisterOptions(invoke="first")) for c in (c3, c2)]
    await cluster.sync()
    observer = await on(cw, cluster, 1)
    lists = await call(observer, "wamp.registration.list")
    assert pre.id in lists["prefix"] and wc.id in lists["wildcard"] and sh[0].id in lists["exact"], lists
    assert await call(observer, "wamp.registration.match", base + ".sh") == sh[0].id
    assert await call(observer, "wamp.registration.match", base + ".q.z") == pre.id  # prefix beats wildcard
    assert await call(observer, "wamp.registration.lookup", base + "..z", {"match": "wildcard"}) == wc.id
    assert await call(observer, "wamp.registration.list_callees", sh[0].id) == [c3.session_id, c2.session_id]
    assert await call(observer, "wamp.registration.count_callees", sh[0].id) == 2
    d = await call(observer, "wamp.registration.get", sh[0].id)
    assert d["uri"] == base + ".sh" and d["match"] == "exact" and d["invoke"] == "first", d
    d = await call(observer, "wamp.registration.get", pre.id)
    assert d["uri"] == base and d["match"] == "prefix", d


async def test_session_meta_events_across_nodes(cluster, cw, unique):
    observer = await on(cw, cluster, 1)
    on_join = await subscribe_log(observer, "wamp.session.on_join")
    on_leave = await subscribe_log(observer, "wamp.session.on_leave")
    await cluster.sync()
    s = await on(cw, cluster, 2, other=True)
    sid, w = s.session_id, s.joined.result()
    args, _, _ = await on_join.wait_for(lambda a: a and isinstance(a[0], dict) and a[0].get("session") == sid,
                                        what="on_join from node 2")
    assert args[0]["authid"] == w.authid and args[0]["authrole"] == "anonymous", args
    await leave(s)
    args, _, _ = await on_leave.wait_for(lambda a: a and a[0] == sid, what="on_leave from node 2")
    assert args == [sid, w.authid, "anonymous"], args
    # wamp.session.get answers this node's sessions
    s3 = await on(cw, cluster, 3)
    assert (await call(s3, "wamp.session.get", s3.session_id))["session"] == s3.session_id


