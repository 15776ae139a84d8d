# Network partition of a 3-node Junction cluster, with network namespaces.
#
# Each node runs in its own namespace (`ip netns exec`), with two links (see
# cluster_helpers.NetLab): the cluster net carrying gRPC between nodes, which
# the test cuts for one node by setting the host end of its veth down, and a
# client net the test's Autobahn clients use from the host, which stays up, so
# the cut-off node's clients can still talk to it.
#
# While one follower is cut off: it refuses new REGISTERs with
# junction.error.cluster_unavailable (after its propose timeout, ~3 s) instead
# of diverging, while SUBSCRIBE, which needs no consensus (each node owns its
# subscription interest), is answered and its own clients' events are routed; the majority keeps accepting registrations and routing; the
# leader declares the cut-off node down. After healing: the node learns it was
# declared down and ends its local sessions (GOODBYE wamp.close.system_shutdown),
# every node's `cluster status` converges (same leader, all members up, same
# commit/applied index), and the node serves again (new registrations, calls
# and events both ways).
#
# Needs root and iproute2; skipped with the reason otherwise. Namespaces and
# bridges are removed at teardown even when the test fails. Node logs:
# target/test-logs/cluster/<test name>/node<N>.stderr.log (overwritten by the next run).
import asyncio
import time

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, SubscribeOptions

from autobahn_helpers import Sink
from cluster_helpers import Cluster, NetLab, netns_unavailable_reason, wait_until
from conftest import ALL_COMBOS, Wamp

CALL_TIMEOUT = 5.0
PROPOSE_TIMEOUT = 3.0  # the router's default cluster.propose_timeout_ms
INTEREST_ACK_LIMIT = 2.0  # router::interest::ACK_LIMIT: how long SUBSCRIBED waits for other nodes


@pytest.fixture
def lab():
    reason = netns_unavailable_reason()
    if reason is not None:
        pytest.skip(f"the partition test needs network namespaces, which cannot be created here: {reason}")
    lab = NetLab(3).setup()
    yield lab
    errors = lab.cleanup()
    assert not errors, f"cleaning up namespaces/links failed: {errors}"


@pytest.fixture
def netcluster(lab, request):
    c = Cluster(request.node.name, n=3, lab=lab)
    try:
        c.start()
    except BaseException:
        c.stop()
        raise
    yield c
    crashed = c.stop()
    if crashed:
        pytest.fail("nodes died during the test: "
                    + ", ".join(f"node {n.node_id} exit {code} (log {n.log_path})" for n, code in crashed))


@pytest.fixture
async def cw():
    w = Wamp(None, ALL_COMBOS[0])
    yield w
    await w.close()


async def call(session, proc, *args, **kwargs):
    return await asyncio.wait_for(session.call(proc, *args, **kwargs), CALL_TIMEOUT)


async def call_or_fail(cluster, what, session, proc, *args):
    """A call that must be answered: a hang fails the test naming `what`."""
    try:
        return await call(session, proc, *args)
    except asyncio.TimeoutError:
        pytest.fail(f"{what}: the call got neither a result nor an error within {CALL_TIMEOUT}s; "
                    f"logs:\n{cluster.logs()}")


@pytest.mark.timeout(120)
async def test_partition_minority_refuses_majority_serves_then_converges(lab, netcluster, cw, unique):
    cluster = netcluster
    lead = await cluster.leader()
    leader = lead.node_id
    iso = 3 if leader != 3 else 2  # cut off a follower
    maj = [i for i in (1, 2, 3) if i != iso]
    other = next(i for i in maj if i != leader)

    # sessions and a registration from before the cut
    c_iso = await cw.session(router=cluster[iso])
    c_iso_b = await cw.session(router=cluster[iso])
    c_lead = await cw.session(router=cluster[leader])
    c_other = await cw.session(router=cluster[other])
    pre = unique()
    await c_lead.register(lambda: "pre", pre)
    await cluster.sync()
    assert await call(c_iso, pre) == "pre"

    lab.isolate(iso)
    cut_at = time.monotonic()

    declared_down = asyncio.Event()

    async def refused(what, fut):
        t0 = time.monotonic()
        try:
            o = await asyncio.wait_for(fut, PROPOSE_TIMEOUT + 10)
        except ApplicationError as e:
            o = e
        took = time.monotonic() - t0
        assert isinstance(o, ApplicationError), (
            f"{what} on the cut-off node {iso} was accepted ({o!r}) instead of refused; logs:\n{cluster.logs()}")
        assert o.error == "junction.error.cluster_unavailable", f"{what}: {o!r}"
        assert took < PROPOSE_TIMEOUT + 3, f"{what}: refused after {took:.2f}s (propose timeout {PROPOSE_TIMEOUT}s)"
        return took

    async def minority_subscribes_and_publishes_locally():
        # subscriptions need no consensus (each node owns its interest): the cut-off
        # node still serves pub/sub among its own clients
        t0 = time.monotonic()
        sink, topic = Sink(), unique()
        await asyncio.wait_for(c_iso_b.subscribe(sink, topic, options=SubscribeOptions(details_arg="details")),
                               INTEREST_ACK_LIMIT + 3)
        took = time.monotonic() - t0
        assert took < INTEREST_ACK_LIMIT + 2, f"SUBSCRIBE on the cut-off node took {took:.2f}s"
        pub = await c_iso.publish(topic, "minority", options=PublishOptions(acknowledge=True))
        args, _, details = await asyncio.wait_for(sink.get(), 5)
        assert args == ["minority"] and details.publication == pub.id
        return 0.0

    async def minority_refuses():
        # two sessions: one session's REGISTER/SUBSCRIBE are handled one after the other
        took = await asyncio.gather(refused("REGISTER", c_iso.register(lambda: "minority", unique())),
                                    minority_subscribes_and_publishes_locally())
        # still refused once the majority has declared the node down
        await asyncio.wait_for(declared_down.wait(), 15)
        took.append(await refused("REGISTER after NodeDown", c_iso_b.register(lambda: "minority", unique())))
        return max(took)

    async def majority_serves():
        proc, topic = unique(), unique()
        t0 = time.monotonic()
        await asyncio.wait_for(c_other.register(lambda: "majority", proc), 10)
        sink = Sink()
        await asyncio.wait_for(c_lead.subscribe(sink, topic, options=SubscribeOptions(details_arg="details")), 10)
        took = time.monotonic() - t0
        assert took < 5, f"registering on the majority during the partition took {took:.2f}s"
        await cluster.sync(ids=maj)
        assert await call(c_lead, proc) == "majority"
        pub = await c_other.publish(topic, "during", options=PublishOptions(acknowledge=True))
        args, _, details = await sink.get()
        assert args == ["during"] and details.publication == pub.id
        # the leader declares the cut-off node down within its lease
        await cluster.wait_status(leader, lambda s: not s.members[iso].up, 10, f"node {iso} declared down")
        declared_down.set()
        return proc, topic, sink

    refused_after, (during_proc, topic, sink_lead) = await asyncio.gather(minority_refuses(), majority_serves())
    down_after = time.monotonic() - cut_at

    lab.heal(iso)
    healed_at = time.monotonic()

    # the node learns it was declared down and ends its sessions
    try:
        left = await asyncio.wait_for(asyncio.shield(c_iso.left), 20)
    except ConnectionError:
        pytest.fail(f"node {iso} dropped its client's transport instead of GOODBYE "
                    f"wamp.close.system_shutdown; logs:\n{cluster.logs()}")
    assert left.reason == "wamp.close.system_shutdown", left

    # the cluster converges: one leader, every member up, the same log position everywhere
    async def converged():
        sts = await cluster.statuses([1, 2, 3])
        leaders = {s.leader for s in sts.values()}
        ups = all(len(s.members) == 3 and all(m.up for m in s.members.values()) for s in sts.values())
        commits = {s.committed for s in sts.values()}
        applied = {s.applied for s in sts.values()}
        if len(leaders) == 1 and None not in leaders and ups and len(commits) == 1 and commits == applied:
            return sts
        return None

    sts = await wait_until(converged, 20, "the cluster to converge after healing")
    converged_after = time.monotonic() - healed_at
    assert sts[iso].state in ("follower", "leader"), sts[iso].text

    # the previously cut-off node serves again: clients reconnect, register, call, publish
    c_iso2 = await cw.session(router=cluster[iso])
    healed_proc, healed_topic = unique(), unique()
    await asyncio.wait_for(c_iso2.register(lambda: "healed", healed_proc), 10)
    sink_iso = Sink()
    await asyncio.wait_for(c_iso2.subscribe(sink_iso, healed_topic, options=SubscribeOptions(details_arg="details")),
                           10)
    await cluster.sync()
    assert await call_or_fail(cluster, f"after healing, node {leader} -> callee on node {iso}",
                              c_lead, healed_proc) == "healed"
    assert await call_or_fail(cluster, f"after healing, node {iso} -> callee on node {other}",
                              c_iso2, during_proc) == "majority"
    assert await call_or_fail(cluster, f"after healing, node {iso} -> callee on node {leader}",
                              c_iso2, pre) == "pre"
    pub = await c_other.publish(healed_topic, "to-iso", options=PublishOptions(acknowledge=True))
    args, _, details = await sink_iso.get()
    assert args == ["to-iso"] and details.publication == pub.id
    pub = await c_iso2.publish(topic, "from-iso", options=PublishOptions(acknowledge=True))
    args, _, details = await sink_lead.get()
    assert args == ["from-iso"] and details.publication == pub.id
    print(f"node {iso}: refusals took up to {refused_after:.2f}s, partition lasted {down_after:.2f}s, "
          f"converged {converged_after:.2f}s after healing")
