# Subscriptions owned by the nodes (cluster design v2), on a 3-node cluster of
# real `junction` processes: each node tells the others over the links which
# topics it has subscribers for, with no Raft commit on the way.
#
# - SUBSCRIBED means every reachable node routes to the subscriber: an event
#   published on another node right after SUBSCRIBED (no cluster.sync()) arrives.
# - A resubscribe racing the leave of the last subscriber on the same node keeps
#   the subscription (v1 lost it in 15 of 20 rounds: the committed SessionGone
#   removed the node's interest after the new SUBSCRIBED).
# - A node that restarts learns the others' interest again, and they learn its.
# - Subscription ids are the same on every node without consensus.
# - Interest lingers ~2 s after a node's last subscriber left: a subscriber back
#   within it gets events published elsewhere; afterwards the others drop it.
#
# Node logs: target/test-logs/cluster/test_cluster_subscription_interest/node<N>.stderr.log.
import asyncio
import collections
import urllib.error
import urllib.request

import pytest
from autobahn.wamp.types import PublishOptions

from autobahn_helpers import Sink, leave
from cluster_helpers import module_cluster
from conftest import ALL_COMBOS, Wamp

EVENT_TIMEOUT = 5.0
ROUNDS = 20


@pytest.fixture(scope="module")
def cluster():
    yield from module_cluster("test_cluster_subscription_interest", extra='[admin]\nlisten = "127.0.0.1:0"\nmetrics_public = true\n')


@pytest.fixture
async def cw(cluster):
    w = Wamp(cluster[1], ALL_COMBOS[0])
    yield w
    await w.close()


def readyz(node):
    """True when the node's /readyz answers 200."""
    try:
        with urllib.request.urlopen(f"{node.listeners['admin']}/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def lingering(node):
    """Node's junction_subscription_interest_lingering gauge."""
    with urllib.request.urlopen(f"{node.listeners['admin']}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("junction_subscription_interest_lingering "):
                return float(line.split()[1])
    raise AssertionError("no junction_subscription_interest_lingering in /metrics")


async def published(session, topic, *args):
    return await asyncio.wait_for(
        session.publish(topic, *args, options=PublishOptions(acknowledge=True, exclude_me=False)), EVENT_TIMEOUT)


async def test_subscribed_means_every_node_routes_to_the_subscriber(cluster, cw, unique):
    publishers = {i: await cw.session(router=cluster[i]) for i in (1, 2)}
    for round_ in range(5):
        topic = unique()
        sink = Sink()
        subscriber = await cw.session(router=cluster[3])
        await subscriber.subscribe(sink, topic)
        for i, p in publishers.items():
            await published(p, topic, f"from node {i}")
        got = sorted([(await sink.get(EVENT_TIMEOUT))[0][0] for _ in publishers])
        assert got == ["from node 1", "from node 2"], f"round {round_}: {got}"
        await leave(subscriber)


async def test_a_resubscribe_racing_the_last_subscribers_leave_keeps_the_subscription(cluster, cw, unique):
    publisher = await cw.session(router=cluster[1])
    lost = []
    for round_ in range(ROUNDS):
        topic = unique()
        leaving = await cw.session(router=cluster[2])
        await leaving.subscribe(lambda *a: None, topic)
        sink = Sink()
        staying = await cw.session(router=cluster[2])
        await asyncio.gather(leave(leaving), staying.subscribe(sink, topic))
        await published(publisher, topic, round_)
        try:
            args, _, _ = await sink.get(EVENT_TIMEOUT)
            assert args == [round_]
        except asyncio.TimeoutError:
            lost.append(round_)
        await leave(staying)
    assert not lost, f"the subscription was lost in rounds {lost} of {ROUNDS}"


async def test_subscription_ids_are_the_same_on_every_node(cluster, cw, unique):
    topic = unique()
    ids = set()
    for i in (1, 2, 3):
        s = await cw.session(router=cluster[i])
        ids.add((await s.subscribe(lambda *a: None, topic)).id)
    assert len(ids) == 1, ids


async def test_a_restarted_node_learns_the_others_interest_and_they_learn_its(cluster, cw, unique):
    before, after = unique(), unique()
    sink_1 = Sink()
    on_1 = await cw.session(router=cluster[1])
    await on_1.subscribe(sink_1, before)
    loop = asyncio.get_running_loop()
    peers = [cluster.grpc[j] for j in sorted(cluster.grpc) if j != 3]
    assert await loop.run_in_executor(None, cluster[3].stop) == 0
    log = cluster[3].log_path
    log.rename(log.with_name("node3.before-restart.stderr.log"))
    await loop.run_in_executor(None, cluster._start_node, 3, peers)
    w3 = Wamp(cluster[3], ALL_COMBOS[0])
    try:
        # node 3 restarted with no interest of its own: it is ready only once the
        # others sent theirs, so its first publication on `before` reaches node 1
        deadline = loop.time() + 15
        while not await loop.run_in_executor(None, readyz, cluster[3]):
            assert loop.time() < deadline, "node 3 never became ready after restarting"
            await asyncio.sleep(0.05)  # polling /readyz
        on_3 = await w3.session(router=cluster[3])
        await published(on_3, before, "after restart")
        args, _, _ = await sink_1.get(EVENT_TIMEOUT)
        assert args == ["after restart"]
        # and a subscriber on the restarted node gets events published elsewhere
        sink_3 = Sink()
        await on_3.subscribe(sink_3, after)
        await published(on_1, after, "to node 3")
        args, _, _ = await sink_3.get(EVENT_TIMEOUT)
        assert args == ["to node 3"]
    finally:
        await w3.close()


PAIRS, TOPICS_PER_PAIR = 4, 500


async def test_a_subscribe_racing_the_other_subscribers_unsubscribe_keeps_every_topic(cluster, cw, unique):
    """Sessions A1..A4 on node 2 hold 500 topics each; B1..B4 on node 2 subscribe to
    the same topics while the As unsubscribe, all at once. The node's interest was
    known everywhere already, so a B's SUBSCRIBE waits for nobody — and an A's
    UNSUBSCRIBE must not withdraw the interest in the moment between the SUBSCRIBE
    finding it and the B being added (found by the reconnect-storm benchmark: ~1% of
    topics lost after 10,000 sessions reconnected)."""
    groups = [[unique() for _ in range(TOPICS_PER_PAIR)] for _ in range(PAIRS)]
    topics = [t for g in groups for t in g]
    received = collections.Counter()
    arrived = asyncio.Event()

    def handler(topic):
        def on_event(*args):
            received[topic] += 1
            if len(received) == len(topics):
                arrived.set()
        return on_event

    async def race(group):
        a = await cw.session(router=cluster[2])
        b = await cw.session(router=cluster[2])
        subs = await asyncio.gather(*(a.subscribe(lambda *args: None, t) for t in group))
        await asyncio.gather(*(s.unsubscribe() for s in subs), *(b.subscribe(handler(t), t) for t in group))

    await asyncio.gather(*(race(g) for g in groups))
    publisher = await cw.session(router=cluster[1])
    await asyncio.gather(*(published(publisher, t, i) for i, t in enumerate(topics)))
    try:
        await asyncio.wait_for(arrived.wait(), EVENT_TIMEOUT)
    except asyncio.TimeoutError:
        pass
    lost = [t for t in topics if received[t] == 0]
    assert not lost, f"{len(lost)} of {len(topics)} topics got no event on node 2 after the race"


LINGER_WITHDRAWN_WITHIN = 8.0


async def new_subscriber_on_2_gets(cw, cluster, publisher, topic, text):
    """A new session on node 2 subscribes to `topic`, gets `text` published by
    `publisher` (on another node), and leaves."""
    sink = Sink()
    s = await cw.session(router=cluster[2])
    await s.subscribe(sink, topic)
    await published(publisher, topic, text)
    args, _, _ = await sink.get(EVENT_TIMEOUT)
    assert args == [text]
    await leave(s)


async def test_interest_lingers_for_a_subscriber_back_soon_and_is_withdrawn_later(cluster, cw, unique):
    """Nobody listens for on_delete, so node 2's interest outlives its last
    subscriber for about two seconds: node 1 still knows the subscription, a subscriber
    back on node 2 within that time gets what node 1 publishes, and once it lingered
    long enough (after the last subscriber's session left) node 1 forgets it."""
    loop = asyncio.get_running_loop()
    topic = unique()
    on_1 = await cw.session(router=cluster[1])
    first = await cw.session(router=cluster[2])
    sub = await first.subscribe(lambda *a: None, topic)
    await sub.unsubscribe()
    assert await on_1.call("wamp.subscription.lookup", topic) == sub.id, "node 2's interest lingers on node 1"
    assert lingering(cluster[2]) >= 1, "node 2's gauge counts it"
    await new_subscriber_on_2_gets(cw, cluster, on_1, topic, "back within the linger")
    await leave(first)
    deadline = loop.time() + LINGER_WITHDRAWN_WITHIN
    while await on_1.call("wamp.subscription.lookup", topic) is not None:
        assert loop.time() < deadline, "node 1 still holds node 2's interest"
        await asyncio.sleep(0.1)  # polling node 1's view until node 2's sweep reaches it
    # and a subscriber after the withdrawal is routed to again
    await new_subscriber_on_2_gets(cw, cluster, on_1, topic, "after the withdrawal")
