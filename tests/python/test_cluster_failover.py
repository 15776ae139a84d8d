# Node loss and membership in a Junction cluster (real `junction` processes on
# 127.0.0.1, a fresh cluster per test):
# - hot standby with invoke='first': the primary's node is killed with SIGKILL
#   during a stream of calls; every call gets a result or an error (none
#   hangs), the errors are wamp.error.canceled, and the standby on another node
#   serves within 2 s of the kill;
# - the Raft leader is killed: the survivors elect a new leader, declare the
#   old one down, and keep accepting registrations and subscriptions;
# - a 4th node joins a 3-voter cluster as a learner and its clients reach
#   callees and subscribers on the other nodes (and the other way round).
#
# Waiting for the cluster polls `junction cluster status` (cluster_helpers);
# nothing sleeps to synchronise. Node logs:
# target/test-logs/cluster/<test name>/node<N>.stderr.log (overwritten by the next run).
import asyncio
import time

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

from autobahn_helpers import Sink
from cluster_helpers import start_cluster
from conftest import ALL_COMBOS, Wamp

CALL_TIMEOUT = 5.0
FAILOVER_DEADLINE = 2.0  # standby serving within this long after kill -9
LEASE_MS = 2000
STREAM_AFTER_KILL = LEASE_MS / 1000 + 0.5
BURST = 3  # calls per tick after the kill


@pytest.fixture
def clusters(request):
    """await clusters(n=3, **kw) -> a started Cluster, stopped at teardown."""
    started = []

    async def make(n=3, **kw):
        name = f"{request.node.name}-{len(started)}" if started else request.node.name
        c = await asyncio.to_thread(start_cluster, name, n, **kw)
        started.append(c)
        return c

    yield make
    crashed = []
    for c in started:
        crashed += c.stop()
    if crashed:
        pytest.fail("nodes died that the test did not kill: "
                    + ", ".join(f"node {n.node_id} exit {code} (log {n.log_path})" for n, code in crashed))


@pytest.fixture
async def cw():
    """Connections to cluster nodes, all closed at teardown: cw.session(router=node)."""
    w = Wamp(None, ALL_COMBOS[0])
    yield w
    await w.close()


async def call(session, proc, *args, **kwargs):
    return await asyncio.wait_for(session.call(proc, *args, **kwargs), CALL_TIMEOUT)


async def call_or_fence_log(cluster, ids, session, proc, *args):
    """A call whose failure carries what the given nodes logged of their fences."""
    try:
        return await call(session, proc, *args)
    except ApplicationError as e:
        lines = []
        for i in ids:
            with open(cluster[i].log_path, errors="replace") as f:
                lines += [f"node {i}: {ln.rstrip()}" for ln in f if "fence" in ln or "leader" in ln]
        raise AssertionError(f"{e}\n" + "\n".join(lines[-40:])) from e


async def test_first_standby_takes_over_when_primary_node_is_killed(clusters, cw, unique):
    cluster = await clusters(3, lease_ms=LEASE_MS)
    proc = unique()
    primary = await cw.session(router=cluster[2])
    standby = await cw.session(router=cluster[3])
    caller = await cw.session(router=cluster[1])

    async def serve_primary(i):
        await asyncio.sleep(0.02)  # some work, so calls are in flight when the node dies
        return ["primary", i]

    def serve_standby(i):
        return ["standby", i]

    reg_p = await primary.register(serve_primary, proc, options=RegisterOptions(invoke="first"))
    reg_s = await standby.register(serve_standby, proc, options=RegisterOptions(invoke="first"))
    assert reg_p.id == reg_s.id
    await cluster.sync()
    assert (await call(caller, proc, -1))[0] == "primary"

    loop = asyncio.get_running_loop()
    records = []  # (i, issued, finished, (kind, value))

    async def one(i):
        t0 = loop.time()
        try:
            res = await asyncio.wait_for(caller.call(proc, i), CALL_TIMEOUT)
            assert res[1] == i
            out = ("ok", res[0])
        except ApplicationError as e:
            out = ("error", e.error)
        except asyncio.TimeoutError:
            out = ("hang", None)
        records.append((i, t0, loop.time(), out))

    def count(out):
        return sum(1 for r in records if r[3] == out)

    # a call every ~2 ms (BURST of them after the kill); kill -9 node 2 once the
    # primary has served 30 of them; go on through the whole lease (until the
    # leader must have committed NodeDown), so calls are issued during every
    # phase of the failover
    tasks = []
    kill_at = None
    start = loop.time()
    i = 0
    while loop.time() - start < 20:
        for _ in range(BURST if kill_at is not None else 1):
            tasks.append(asyncio.create_task(one(i)))
            i += 1
        if kill_at is None and count(("ok", "primary")) >= 30:
            kill_at = loop.time()
            cluster[2].sigkill()
        if kill_at is not None and loop.time() - kill_at > STREAM_AFTER_KILL:
            break
        await asyncio.sleep(0.002)  # pacing of the call stream, not synchronisation
    await asyncio.wait_for(asyncio.gather(*tasks), CALL_TIMEOUT + 5)

    summary = (f"{len(records)} calls, kill at +{(kill_at or start) - start:.3f}s; outcomes: "
               + ", ".join(f"{k}={count(k)}" for k in sorted({r[3] for r in records}, key=str)))
    assert kill_at is not None, f"the primary never served 30 calls: {summary}; logs:\n{cluster.logs()}"
    hangs = [r[0] for r in records if r[3][0] == "hang"]
    assert not hangs, f"calls {hangs} got no answer within {CALL_TIMEOUT}s; {summary}; logs:\n{cluster.logs()}"
    errors = {r[3][1] for r in records if r[3][0] == "error"}
    assert errors <= {"wamp.error.canceled"}, f"unexpected errors {errors}; {summary}"
    # errors come "at once" (from the link break, not from a timeout): within 1 s
    # of the kill, or of the call for calls issued after it
    late = [(r[0], round(r[2] - max(r[1], kill_at), 3)) for r in records
            if r[3][0] == "error" and r[2] - max(r[1], kill_at) > 1.0]
    assert not late, f"calls canceled more than 1 s after the kill (call, delay): {late}; {summary}"
    # before the kill only the primary served (invoke=first)
    early_standby = [r[0] for r in records if r[3] == ("ok", "standby") and r[2] < kill_at]
    assert not early_standby, f"the standby served calls {early_standby} while the primary was up; {summary}"
    standby_done = sorted(r[2] for r in records if r[3] == ("ok", "standby"))
    assert standby_done, f"the standby never served; {summary}; logs:\n{cluster.logs()}"
    took = standby_done[0] - kill_at
    assert took <= FAILOVER_DEADLINE, (f"the standby served {took:.3f}s after kill -9 "
                                       f"(limit {FAILOVER_DEADLINE}s); {summary}; logs:\n{cluster.logs()}")
    # once the standby took over, every later call is served by it
    first_standby = standby_done[0]
    after = [r for r in records if r[1] > first_standby]
    bad = [(r[0], f"issued +{r[1] - kill_at:.3f}s", f"answered +{r[2] - kill_at:.3f}s", r[3]) for r in after
           if r[3] != ("ok", "standby")]
    assert after and not bad, (f"calls issued after the failover (+{first_standby - kill_at:.3f}s after the kill) "
                               f"not served by the standby: {bad}; {summary}; logs:\n{cluster.logs()}")

    # the leader declares node 2 down within the lease, and the registration
    # is left with the standby as its only callee
    await cluster.wait_status(1, lambda s: not s.members[2].up, 10, "node 2 declared down")
    await cluster.sync()
    assert await call(caller, "wamp.registration.list_callees", reg_s.id) == [standby.session_id]


async def test_leader_killed_new_leader_elected_registrations_keep_working(clusters, cw, unique):
    cluster = await clusters(3)
    old = await cluster.leader()
    leader = old.node_id
    a, b = [i for i in (1, 2, 3) if i != leader]

    # state from before the kill, on the nodes that survive
    callee_a = await cw.session(router=cluster[a])
    caller_b = await cw.session(router=cluster[b])
    old_proc = unique()
    await callee_a.register(lambda x: x + 1, old_proc)
    await cluster.sync()
    assert await call(caller_b, old_proc, 1) == 2

    killed_at = time.monotonic()
    cluster[leader].sigkill()

    new = await cluster.leader(ids=[a, b], timeout=10)
    elected = time.monotonic() - killed_at
    assert new.node_id in (a, b) and new.term > old.term, f"{old.text}\n---\n{new.text}"
    assert elected < 5, f"new leader only after {elected:.2f}s; logs:\n{cluster.logs()}"

    # new registrations and subscriptions on both survivors
    new_proc, topic = unique(), unique()
    callee_b = await cw.session(router=cluster[b])
    subscriber_a = await cw.session(router=cluster[a])
    sink = Sink()
    reg = await asyncio.wait_for(callee_b.register(lambda x: x * 2, new_proc), 10)
    sub = await asyncio.wait_for(subscriber_a.subscribe(sink, topic, options=SubscribeOptions(details_arg="details")),
                                 10)
    took = time.monotonic() - killed_at
    assert took < 8, f"registering after the leader's death took {took:.2f}s from the kill"
    assert isinstance(reg.id, int) and isinstance(sub.id, int)
    await cluster.sync(ids=[a, b])
    assert await call_or_fence_log(cluster, [a, b], callee_a, new_proc, 21) == 42  # a -> b
    assert await call_or_fence_log(cluster, [a, b], caller_b, old_proc, 41) == 42  # b -> a, from before the kill
    pub = await caller_b.publish(topic, "after", options=PublishOptions(acknowledge=True))
    args, _, details = await sink.get()
    assert args == ["after"] and details.publication == pub.id

    # a `single` registration is still refused cluster-wide by the new majority
    with pytest.raises(ApplicationError) as exc:
        await asyncio.wait_for(subscriber_a.register(lambda x: x, new_proc), 10)
    assert exc.value.error == "wamp.error.procedure_already_exists"

    # the dead leader is declared down by the new one
    await cluster.wait_status(new.node_id, lambda s: not s.members[leader].up, 10,
                              f"old leader {leader} declared down")


async def test_fourth_node_joins_as_learner_and_routes(clusters, cw, unique):
    cluster = await clusters(3)
    await asyncio.to_thread(cluster.add_node)
    st = await cluster.wait_status(1, lambda s: 4 in s.members and s.members[4].up, 10, "node 4 a member, up")
    roles = {i: m.role for i, m in st.members.items()}
    assert roles == {1: "voter", 2: "voter", 3: "voter", 4: "learner"}, st.text
    st4 = await cluster.status(4)
    assert st4.members[4].role == "learner", st4.text
    assert st4.leader == st.node_id, st4.text

    proc2, proc4, topic = unique(), unique(), unique()
    callee2 = await cw.session(router=cluster[2])
    await callee2.register(lambda x: ["node2", x], proc2)
    c4 = await cw.session(router=cluster[4])
    await c4.register(lambda x: ["node4", x], proc4)  # a learner's registration goes through the leader
    sink4 = Sink()
    await c4.subscribe(sink4, topic, options=SubscribeOptions(details_arg="details"))
    sink2 = Sink()
    await callee2.subscribe(sink2, topic, options=SubscribeOptions(details_arg="details"))
    await cluster.sync()

    assert await call(c4, proc2, 1) == ["node2", 1]  # learner -> voter
    caller3 = await cw.session(router=cluster[3])
    assert await call(caller3, proc4, 2) == ["node4", 2]  # voter -> learner
    pub1 = await caller3.publish(topic, "from3", options=PublishOptions(acknowledge=True))
    for sink in (sink2, sink4):
        args, _, details = await sink.get()
        assert args == ["from3"] and details.publication == pub1.id
    pub4 = await c4.publish(topic, "from4", options=PublishOptions(acknowledge=True))
    args, _, details = await sink2.get()
    assert args == ["from4"] and details.publication == pub4.id

    # the learner sees the same replicated state (same registration id everywhere)
    rid = await call(caller3, "wamp.registration.lookup", proc4)
    assert await call(c4, "wamp.registration.lookup", proc4) == rid
    assert await call(c4, "wamp.registration.list_callees", rid) == [c4.session_id]

    # and the cluster agrees on the membership afterwards
    sts = await cluster.statuses()
    assert {s.leader for s in sts.values()} == {st.node_id}
    for i, s in sts.items():
        assert {j: m.role for j, m in s.members.items()} == roles, f"node {i}:\n{s.text}"


PAUSE_S = 6.0  # well past the lease and several election timeouts


async def test_a_follower_resuming_from_a_pause_does_not_depose_the_leader(clusters):
    """SIGSTOP a follower past its lease, SIGCONT it: the cluster declares it down
    meanwhile, and when it resumes it rejoins under the same leader and term (it
    must not start an election of its own on waking, which would depose a healthy
    leader and leave the cluster without one for an election or two). Killed then,
    the leader declares it down again although it is the incarnation it declared
    down before."""
    import os
    import signal

    cluster = await clusters(3, lease_ms=LEASE_MS)
    lead = await cluster.leader()
    follower = next(i for i in cluster.live() if i != lead.leader)
    pid = cluster[follower].proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(PAUSE_S)  # the fault: the length of the pause
    finally:
        os.kill(pid, signal.SIGCONT)
    # the resumed follower catches up with the leader it had
    await cluster.sync(timeout=20)
    after = await cluster.leader()
    assert (after.leader, after.term) == (lead.leader, lead.term), (
        f"leader/term before the pause {lead.leader}/{lead.term}, after {after.leader}/{after.term}; "
        f"logs:\n{cluster.logs()}")
    # the leader did declare it down meanwhile (it came back with the same incarnation)
    with open(cluster[lead.leader].log_path, errors="replace") as f:
        declared = sum("declaring it down" in ln and f"node={follower}" in ln for ln in f)
    assert declared >= 1, f"the leader never declared the paused node {follower} down; logs:\n{cluster.logs()}"
    # killed now, the same leader declares it down again
    cluster[follower].sigkill()
    await cluster.wait_status(lead.leader, lambda s: not s.members[follower].up, 10,
                              f"node {follower}, back from its pause and then killed, declared down again by "
                              f"the leader {lead.leader} that declared it down during the pause")
