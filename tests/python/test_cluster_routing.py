# Cross-node routing through a 3-node Junction cluster (real `junction`
# processes on 127.0.0.1, one cluster shared by the module): RPC over all six
# transport x serializer pairs with the callee and the caller on different
# nodes (payloads, binary, application errors, progressive results), pub/sub
# with subscribers on other nodes than the publisher (cluster-wide subscription
# ids, exclude_me, acknowledge, black/white listing applied on the remote node),
# a roundrobin registration spread over callees on 3 nodes, `single`
# registrations raced from two nodes, and the registration meta API and meta
# events answered cluster-wide.
#
# A node answers REGISTER once the change is applied on itself (SUBSCRIBE once every
# reachable node acknowledged the new interest); the other nodes apply a
# registration within the replication lag, so a test that acts on
# another node right after a registration first waits with `cluster.sync()`
# (polls `junction cluster status` until every node applied the leader's commit
# index) instead of sleeping.
#
# Node logs: target/test-logs/cluster/test_cluster_routing/node<N>.stderr.log.
import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import (CallOptions, CallResult, PublishOptions, RegisterOptions, SubscribeOptions)

from autobahn_helpers import Sink
from cluster_helpers import start_cluster
from conftest import ALL_COMBOS, Wamp, assert_same, other_combo
from payloads import BINARY, PAYLOAD_ARGS, PAYLOAD_KWARGS

CALL_TIMEOUT = 10


@pytest.fixture(scope="module")
def cluster():
    c = start_cluster("test_cluster_routing", n=3)
    yield c
    crashed = c.stop()
    if crashed:
        pytest.fail("nodes died during the module: "
                    + ", ".join(f"node {n.node_id} exit {code} (log {n.log_path})" for n, code in crashed))


@pytest.fixture
async def cw(cluster, request):
    """Connections to any node of the module's cluster: cw.session(router=cluster[i])."""
    combo = request.getfixturevalue("combo") if "combo" in request.fixturenames else ALL_COMBOS[0]
    w = Wamp(cluster[1], combo)
    yield w
    await w.close()


async def call(session, proc, *args, **kwargs):
    return await asyncio.wait_for(session.call(proc, *args, **kwargs), CALL_TIMEOUT)


# --------------------------------------------------------------------------
# RPC across nodes, every serializer
# --------------------------------------------------------------------------


async def test_rpc_args_kwargs_cross_node(cluster, cw, combo, unique):
    callee = await cw.session(router=cluster[2])
    caller = await cw.session(router=cluster[1])
    caller_other = await cw.session(router=cluster[3], combo=other_combo(combo))
    proc = unique()
    seen = []

    def handler(*args, **kwargs):
        seen.append((list(args), kwargs))
        return CallResult(*args, **kwargs)

    await callee.register(handler, proc)
    await cluster.sync()

    res = await call(caller, proc, *PAYLOAD_ARGS, **PAYLOAD_KWARGS)
    assert_same(seen[-1][0], PAYLOAD_ARGS)
    assert_same(seen[-1][1], PAYLOAD_KWARGS)
    assert_same(list(res.results), PAYLOAD_ARGS)
    assert_same(res.kwresults, PAYLOAD_KWARGS)

    # node 3, other transport and serializer -> callee on node 2
    res = await call(caller_other, proc, *PAYLOAD_ARGS, **PAYLOAD_KWARGS)
    assert_same(list(res.results), PAYLOAD_ARGS)
    assert_same(res.kwresults, PAYLOAD_KWARGS)

    # single value / no value
    assert await call(caller, proc, 2**53) == 2**53
    assert await call(caller, proc) is None


async def test_rpc_binary_cross_node(cluster, cw, combo, unique):
    callee = await cw.session(router=cluster[2])
    caller = await cw.session(router=cluster[1])
    caller_other = await cw.session(router=cluster[3], combo=other_combo(combo))
    proc, rev = unique(), unique()
    seen = []

    def handler(*args, **kwargs):
        seen.append((list(args), kwargs))
        return CallResult(*args, **kwargs)

    await callee.register(handler, proc)
    await callee.register(lambda b: b[::-1], rev)
    await cluster.sync()

    args = [BINARY, b"", b"\x00", "text that is not binary", [BINARY]]
    kwargs = {"blob": BINARY, "nested": {"list": [b"\xff\xfe", 1]}}
    for c in (caller, caller_other):
        res = await call(c, proc, *args, **kwargs)
        assert_same(seen[-1][0], args)
        assert_same(seen[-1][1], kwargs)
        assert_same(list(res.results), args)
        assert_same(res.kwresults, kwargs)
        assert_same(await call(c, rev, BINARY), BINARY[::-1])


async def test_rpc_application_error_cross_node(cluster, cw, combo, unique):
    callee = await cw.session(router=cluster[2])
    caller = await cw.session(router=cluster[1])
    caller_other = await cw.session(router=cluster[3], combo=other_combo(combo))
    proc = unique()
    err_uri = "com.example.error.cluster_failure"

    def fail(*args, **kwargs):
        raise ApplicationError(err_uri, "first", 2, {"nested": [1, 2.5, None]}, BINARY,
                               reason="bad input", count=3, flags={"a": True})

    await callee.register(fail, proc)
    await cluster.sync()
    for c in (caller, caller_other):
        with pytest.raises(ApplicationError) as exc:
            await call(c, proc, 1, x=2)
        e = exc.value
        assert e.error == err_uri
        assert_same(list(e.args), ["first", 2, {"nested": [1, 2.5, None]}, BINARY])
        assert_same(e.kwargs, {"reason": "bad input", "count": 3, "flags": {"a": True}})


async def test_rpc_progressive_results_cross_node(cluster, cw, combo, unique):
    callee = await cw.session(router=cluster[2])
    caller = await cw.session(router=cluster[1], combo=other_combo(combo))
    proc = unique()

    async def stream(n, details=None):
        assert details.progress is not None, "caller asked for progress, callee got no progress()"
        for i in range(n):
            details.progress(i, square=i * i, blob=bytes([i]))
            await asyncio.sleep(0)  # let the transport write in between
        return "done"

    await callee.register(stream, proc, options=RegisterOptions(details_arg="details"))
    await cluster.sync()
    got = []
    fut = None

    def on_progress(*args, **kwargs):
        got.append((list(args), kwargs, fut.done()))

    fut = caller.call(proc, 5, options=CallOptions(on_progress=on_progress))
    assert await asyncio.wait_for(fut, CALL_TIMEOUT) == "done"
    assert got == [([i], {"square": i * i, "blob": bytes([i])}, False) for i in range(5)]


# --------------------------------------------------------------------------
# pub/sub across nodes
# --------------------------------------------------------------------------


async def test_pubsub_cross_node(cluster, cw, combo, unique):
    topic = unique()
    s2 = await cw.session(router=cluster[2])
    s3 = await cw.session(router=cluster[3], combo=other_combo(combo))
    s3b = await cw.session(router=cluster[3])
    publisher = await cw.session(router=cluster[1])
    sinks = [Sink(), Sink(), Sink()]
    opts = SubscribeOptions(details_arg="details")
    # the first subscribers on nodes 2 and 3 race: both become the first
    # subscriber of their node, and must still get the same subscription id
    subs = await asyncio.gather(s2.subscribe(sinks[0], topic, options=opts),
                                s3.subscribe(sinks[1], topic, options=opts))
    subs.append(await s3b.subscribe(sinks[2], topic, options=opts))
    await cluster.sync()
    # a subscriber on the publisher's own node too, subscribing after the others
    s1 = await cw.session(router=cluster[1], combo=other_combo(combo))
    sink1 = Sink()
    subs.append(await s1.subscribe(sink1, topic, options=opts))
    ids = {s.id for s in subs}
    assert len(ids) == 1, f"same topic, different subscription ids on different nodes: {[s.id for s in subs]}"

    args = [*PAYLOAD_ARGS, BINARY]
    kwargs = {**PAYLOAD_KWARGS, "blob": BINARY}
    pub = await publisher.publish(topic, *args, options=PublishOptions(acknowledge=True), **kwargs)
    for sink in [*sinks, sink1]:
        got_args, got_kwargs, details = await sink.get()
        assert_same(got_args, args)
        assert_same(got_kwargs, kwargs)
        assert details.subscription.id == subs[0].id
        assert details.publication == pub.id

    # per-publisher order is kept across the link
    for i in range(20):
        publisher.publish(topic, i)
    for sink in [*sinks, sink1]:
        assert [(await sink.get())[0][0] for _ in range(20)] == list(range(20))


async def test_pubsub_exclude_me_and_acknowledge_cross_node(cluster, cw, unique):
    topic = unique()
    remote = await cw.session(router=cluster[2])
    publisher = await cw.session(router=cluster[1])
    r_sink, p_sink = Sink(), Sink()
    opts = SubscribeOptions(details_arg="details")
    await remote.subscribe(r_sink, topic, options=opts)
    await publisher.subscribe(p_sink, topic, options=opts)
    await cluster.sync()

    # acknowledge=False: no PUBLISHED, the event still crosses
    assert publisher.publish(topic, "no-ack") is None
    assert (await r_sink.get())[0] == ["no-ack"]
    # acknowledge=True: PUBLISHED with a publication id, the same one the remote subscriber sees
    pub = await publisher.publish(topic, "ack", options=PublishOptions(acknowledge=True))
    assert isinstance(pub.id, int) and 0 < pub.id <= 2**53
    args, _, details = await r_sink.get()
    assert args == ["ack"] and details.publication == pub.id
    # exclude_me (default true): the publisher's own subscription got neither
    await publisher.publish(topic, "not-me", options=PublishOptions(acknowledge=True, exclude_me=True))
    assert (await r_sink.get())[0] == ["not-me"]
    # exclude_me=False: the publisher gets its own event, the remote one too
    await publisher.publish(topic, "me-too", options=PublishOptions(acknowledge=True, exclude_me=False))
    assert (await r_sink.get())[0] == ["me-too"]
    assert (await p_sink.get())[0] == ["me-too"], "publisher got an event it excluded itself from"


async def test_pubsub_blackwhite_applied_on_remote_node(cluster, cw, combo, unique):
    topic = unique()
    # subscribers 0, 1 on node 2, 2 on node 3, 3 on node 1 (the publisher's)
    placement = [2, 2, 3, 1]
    subscribers, sinks = [], []
    for i, node in enumerate(placement):
        s = await cw.session(router=cluster[node], combo=combo if i % 2 == 0 else other_combo(combo))
        sink = Sink()
        await s.subscribe(sink, topic, options=SubscribeOptions(details_arg="details"))
        subscribers.append(s)
        sinks.append(sink)
    publisher = await cw.session(router=cluster[1])
    await cluster.sync()
    ids = [s.session_id for s in subscribers]
    assert len(set(ids)) == len(ids), f"session ids not unique across nodes: {ids}"

    async def receivers(**options):
        """Publish with options, then an unrestricted barrier; who got the first one."""
        pub = await publisher.publish(topic, "restricted", options=PublishOptions(acknowledge=True, **options))
        await publisher.publish(topic, "barrier", options=PublishOptions(acknowledge=True))
        got = []
        for i, sink in enumerate(sinks):
            args, _, details = await sink.get()
            if args == ["restricted"]:
                assert details.publication == pub.id
                got.append(i)
                args, _, _ = await sink.get()
            assert args == ["barrier"], (i, args)
        return got

    assert await receivers() == [0, 1, 2, 3]
    assert await receivers(exclude=[ids[0]]) == [1, 2, 3]
    assert await receivers(exclude=[ids[1], ids[2]]) == [0, 3]
    assert await receivers(eligible=[ids[1]]) == [1]
    assert await receivers(eligible=[ids[0], ids[2]]) == [0, 2]
    assert await receivers(eligible=[ids[0], ids[1], ids[2]], exclude=[ids[1]]) == [0, 2]
    assert await receivers(eligible=[publisher.session_id]) == []


# --------------------------------------------------------------------------
# shared registrations spanning the cluster
# --------------------------------------------------------------------------


async def test_roundrobin_spread_over_three_nodes(cluster, cw, unique):
    proc = unique()
    counts = {1: 0, 2: 0, 3: 0}
    regs = []
    for node in (1, 2, 3):
        callee = await cw.session(router=cluster[node])

        def handler(i, node=node):
            counts[node] += 1
            return [node, i]

        regs.append(await callee.register(handler, proc, options=RegisterOptions(invoke="roundrobin")))
    assert len({r.id for r in regs}) == 1, f"one shared registration, got ids {[r.id for r in regs]}"
    await cluster.sync()

    caller = await cw.session(router=cluster[1])
    results = await asyncio.wait_for(asyncio.gather(*(caller.call(proc, i) for i in range(300))), 30)
    assert [r[1] for r in results] == list(range(300))
    assert counts == {1: 100, 2: 100, 3: 100}, f"roundrobin over 3 nodes is uneven: {counts}"
    served = {n: sum(1 for r in results if r[0] == n) for n in (1, 2, 3)}
    assert served == counts


async def test_single_registration_race_across_nodes(cluster, cw, unique):
    a = await cw.session(router=cluster[2])
    b = await cw.session(router=cluster[3])
    caller = await cw.session(router=cluster[1])
    for round_ in range(5):
        proc = unique()
        outcome = await asyncio.wait_for(
            asyncio.gather(a.register(lambda: "a", proc), b.register(lambda: "b", proc), return_exceptions=True),
            10)
        winners = [i for i, o in enumerate(outcome) if not isinstance(o, BaseException)]
        losers = [o for o in outcome if isinstance(o, BaseException)]
        assert len(winners) == 1, f"round {round_}: exactly one REGISTER must win, got {outcome!r}"
        assert isinstance(losers[0], ApplicationError), f"round {round_}: {losers[0]!r}"
        assert losers[0].error == "wamp.error.procedure_already_exists", f"round {round_}: {losers[0]!r}"
        await cluster.sync()
        assert await call(caller, proc) == "ab"[winners[0]]
        reg_id = await call(caller, "wamp.registration.lookup", proc)
        callees = await call(caller, "wamp.registration.list_callees", reg_id)
        assert callees == [(a, b)[winners[0]].session_id]


# --------------------------------------------------------------------------
# meta API cluster-wide
# --------------------------------------------------------------------------


async def test_registration_meta_api_cluster_wide(cluster, cw, unique):
    proc = unique()
    observer = await cw.session(router=cluster[1])
    on_create, on_register = Sink(), Sink()
    await observer.subscribe(on_create, "wamp.registration.on_create",
                             options=SubscribeOptions(details_arg="details"))
    await observer.subscribe(on_register, "wamp.registration.on_register",
                             options=SubscribeOptions(details_arg="details"))
    await cluster.sync()

    callee = await cw.session(router=cluster[2])
    reg = await callee.register(lambda: None, proc)
    await cluster.sync()

    # meta events published on node 2 reach the subscriber on node 1
    while True:
        args, _, _ = await on_create.get()
        if args[1].get("uri") == proc:
            break
    assert args[0] == callee.session_id
    assert args[1]["id"] == reg.id and args[1]["match"] == "exact" and args[1]["invoke"] == "single"
    while True:
        args, _, _ = await on_register.get()
        if args[1] == reg.id:
            break
    assert args[0] == callee.session_id

    # meta procedures on node 1 answer about the registration made on node 2
    lst = await call(observer, "wamp.registration.list")
    assert reg.id in lst["exact"], lst
    got = await call(observer, "wamp.registration.get", reg.id)
    assert got["id"] == reg.id and got["uri"] == proc
    assert got["match"] == "exact" and got["invoke"] == "single"
    assert isinstance(got["created"], str) and got["created"]
    assert await call(observer, "wamp.registration.lookup", proc) == reg.id
    assert await call(observer, "wamp.registration.match", proc) == reg.id
    assert await call(observer, "wamp.registration.list_callees", reg.id) == [callee.session_id]
    assert await call(observer, "wamp.registration.count_callees", reg.id) == 1

    # a callee added on node 3 shows up on node 1 too
    callee3 = await cw.session(router=cluster[3])
    proc2 = unique()
    reg2 = await callee3.register(lambda: None, proc2, options=RegisterOptions(invoke="roundrobin"))
    reg2b = await callee.register(lambda: None, proc2, options=RegisterOptions(invoke="roundrobin"))
    assert reg2.id == reg2b.id
    await cluster.sync()
    assert await call(observer, "wamp.registration.list_callees", reg2.id) == [callee3.session_id,
                                                                                callee.session_id]
    assert (await call(observer, "wamp.registration.get", reg2.id))["invoke"] == "roundrobin"

    # unregistering on node 2 is visible on node 1
    await reg.unregister()
    await cluster.sync()
    assert reg.id not in (await call(observer, "wamp.registration.list"))["exact"]
    assert await call(observer, "wamp.registration.lookup", proc) is None
    with pytest.raises(ApplicationError) as exc:
        await call(observer, "wamp.registration.get", reg.id)
    assert exc.value.error == "wamp.error.no_such_registration"
