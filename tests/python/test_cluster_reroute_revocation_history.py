# Advanced Profile features across the nodes of a 3-node cluster (real
# `junction` processes): call rerouting between callees on different nodes,
# registration / subscription revocation of a session on another node, event
# history kept by every node, and the session meta API answering for every node
# (wamp.session.count/list/get/kill/kill_by_authid/kill_by_authrole/kill_all).
#
# A node answers REGISTER/SUBSCRIBE once the change is applied on itself; a test
# that acts on another node first waits with `cluster.sync()`, never a sleep.
import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions

import wampraw
from autobahn_helpers import call, leave, subscribe_log
from cluster_helpers import module_cluster
from conftest import ALL_COMBOS, Wamp, other_combo
from raw_clients import ALL_CLIENT_FEATURES, raw_on, with_features

pytestmark = pytest.mark.timeout(40)

HISTORY = """
[[realms]]
name = "realm1"
[[realms.history]]
topic = "com.c3.hist"
match = "prefix"
limit = 50
"""


@pytest.fixture(scope="module")
def cluster():
    yield from module_cluster("test_cluster_reroute_revocation_history", extra=HISTORY)


@pytest.fixture
async def cw(cluster):
    w = Wamp(cluster[1], ALL_COMBOS[1])
    yield w
    await w.close()


async def on(cw, cluster, node, i=0):
    return await cw.session(router=cluster[node], combo=ALL_COMBOS[i % len(ALL_COMBOS)])


# --- call rerouting ----------------------------------------------------------


@pytest.mark.parametrize("invoke", ["roundrobin", "first", "random", "last"])
async def test_reroute_across_nodes(cluster, cw, unique, invoke):
    proc = unique()
    seen = {1: 0, 2: 0, 3: 0}
    for node in (1, 2, 3):
        s = await on(cw, cluster, node, node)

        def handler(node=node):
            seen[node] += 1
            if node == 1 or (invoke == "last" and node == 3):
                raise ApplicationError("wamp.error.unavailable")
            return node

        await s.register(handler, proc, options=RegisterOptions(invoke=invoke))
    await cluster.sync()
    caller = await on(cw, cluster, 2, 4)
    for _ in range(4):
        assert await call(caller, proc) in ({2, 3} if invoke != "last" else {2})
    if invoke in ("roundrobin", "first"):
        assert seen[1] >= 1, "the unavailable callee was asked and the call went on"


async def test_all_unavailable_across_nodes(cluster, cw, unique):
    proc = unique()
    seen = []
    for node in (1, 2, 3):
        s = await on(cw, cluster, node, node)

        def unavailable(node=node):
            seen.append(node)
            raise ApplicationError("wamp.error.unavailable")

        await s.register(unavailable, proc, options=RegisterOptions(invoke="roundrobin"))
    await cluster.sync()
    caller = await on(cw, cluster, 1, 2)
    with pytest.raises(ApplicationError) as e:
        await call(caller, proc)
    assert e.value.error == "wamp.error.no_available_callee"
    assert sorted(seen) == [1, 2, 3], "each callee invoked exactly once"


# --- revocation --------------------------------------------------------------

REVOKING = with_features(ALL_CLIENT_FEATURES, registration_revocation=True, subscription_revocation=True)


async def test_revoke_a_callee_on_another_node(cluster, cw, unique):
    proc = unique()
    callee = await raw_on(cw, router=cluster[2], combo=ALL_COMBOS[3], roles=REVOKING)
    reply = await callee.request([wampraw.REGISTER, callee.request_id(), {}, proc])
    assert reply[0] == wampraw.REGISTERED, reply
    reg = reply[2]
    await cluster.sync()
    admin = await on(cw, cluster, 1)
    await call(admin, "wamp.registration.remove_callee", reg, callee.session_id, reason="rebalancing")
    assert await callee.recv() == [wampraw.UNREGISTERED, 0, {"registration": reg, "reason": "rebalancing"}]
    await cluster.sync()
    with pytest.raises(ApplicationError) as e:
        await call(await on(cw, cluster, 3), proc)
    assert e.value.error == "wamp.error.no_such_procedure"


async def test_revoke_a_subscriber_on_another_node(cluster, cw, unique):
    topic = unique()
    sub = await raw_on(cw, router=cluster[3], combo=ALL_COMBOS[5], roles=REVOKING)
    reply = await sub.request([wampraw.SUBSCRIBE, sub.request_id(), {}, topic])
    sid = reply[2]
    keeper = await subscribe_log(await on(cw, cluster, 2), topic)
    await cluster.sync()
    admin = await on(cw, cluster, 1)
    assert sorted(await call(admin, "wamp.subscription.list_subscribers", sid)) == sorted(
        [sub.session_id, keeper.subscription.session._session_id])
    await call(admin, "wamp.subscription.remove_subscriber", sid, sub.session_id)
    assert await sub.recv() == [wampraw.UNSUBSCRIBED, 0, {"subscription": sid}]
    await cluster.sync()
    await admin.publish(topic, "after", options=PublishOptions(acknowledge=True))
    assert (await keeper.get())[0] == ["after"]
    reply = await sub.request([wampraw.CALL, sub.request_id(), {}, "wamp.session.count"])
    assert reply[0] == wampraw.RESULT, f"the revoked subscriber got {reply!r} first"


# --- event history -------------------------------------------------------------


async def test_every_node_keeps_the_history(cluster, cw, unique):
    topic = "com.c3.hist." + unique().replace(".", "_")
    pub = await on(cw, cluster, 2, 2)
    ids = [(await pub.publish(topic, i, options=PublishOptions(acknowledge=True))).id for i in range(3)]
    await cluster.sync()
    for node in (1, 3):
        s = await on(cw, cluster, node, node)
        sid = await call(s, "wamp.subscription.lookup", "com.c3.hist", {"match": "prefix"})
        events = await call(s, "wamp.subscription.get_events", sid, topic=topic)
        assert [e["publication"] for e in events] == ids, (node, events)
        assert [e["args"] for e in events] == [[0], [1], [2]]


# --- session meta API, cluster-wide --------------------------------------------


async def test_session_meta_covers_every_node(cluster, cw, unique):
    marker = unique()
    sessions = {n: await on(cw, cluster, n, n) for n in (1, 2, 3)}
    ids = {n: s.session_id for n, s in sessions.items()}
    listed = await call(sessions[1], "wamp.session.list")
    assert set(ids.values()) <= set(listed), (ids, listed)
    assert await call(sessions[2], "wamp.session.count") == len(listed)
    for n in (1, 2, 3):
        d = await call(sessions[1 + n % 3], "wamp.session.get", ids[n])
        assert d["session"] == ids[n] and d["authrole"] == "anonymous", d
    with pytest.raises(ApplicationError) as e:
        await call(sessions[1], "wamp.session.get", 123456789)
    assert e.value.error == "wamp.error.no_such_session"
    # kill a session on node 3 from node 1
    victim = sessions[3]
    await call(sessions[1], "wamp.session.kill", ids[3], reason="com.example." + marker.replace(".", "_"))
    details = await leave_details(victim)
    assert details.reason.startswith("com.example."), details
    assert ids[3] not in await call(sessions[2], "wamp.session.list")


async def leave_details(s, timeout=10):
    import asyncio

    return await asyncio.wait_for(asyncio.shield(s.left), timeout)


async def test_kill_by_authid_role_and_all_across_nodes(cluster, unique):
    # anonymous authids are unique per session: kill_by_authid takes exactly one
    w = Wamp(cluster[1], ALL_COMBOS[0])
    try:
        s1 = await w.session(router=cluster[1])
        s2 = await w.session(router=cluster[2], combo=ALL_COMBOS[4])
        s3 = await w.session(router=cluster[3], combo=ALL_COMBOS[2])
        id2 = s2.session_id
        d2 = await call(s1, "wamp.session.get", id2)
        killed = await call(s1, "wamp.session.kill_by_authid", d2["authid"])
        assert killed == [id2], killed
        await leave_details(s2)
        n = await call(s1, "wamp.session.kill_by_authrole", "anonymous")
        assert n >= 1
        await leave_details(s3)
        assert s1.is_attached(), "the caller is never killed"
        s4 = await w.session(router=cluster[2], combo=ALL_COMBOS[1])
        await cluster.sync()
        assert await call(s1, "wamp.session.kill_all") >= 1
        await leave_details(s4)
        assert await call(s1, "wamp.session.count") == 1
    finally:
        await w.close()
