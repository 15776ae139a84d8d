# Retained events owned by the publishing node and replicated on the links
# (cluster design v2), and the link's numbered frames, on 3-node clusters of real
# `junction` processes:
#
# - a retained event published on node 1 reaches a get_retained subscriber on
#   node 3 (acknowledged: PUBLISHED waits until every node up has it; without
#   acknowledge it arrives soon after), and the newest publication of a topic wins
#   whichever node published it;
# - it survives kill -9 of node 1, and needs no quorum to be retained;
# - a node that restarts gets the retained set again when its links reconnect,
#   also events published while it was down;
# - frames lost when a link broke with frames in flight (the receiver SIGSTOPped
#   until the sender's keepalive gave up) show as a gap and missed frames on the
#   receiver's /metrics, and as dropped frames on the sender's.
#
# Node logs: target/test-logs/cluster/test_cluster_retained_links_<test>/node<N>.stderr.log.
import asyncio
import http.client
import os
import re
import signal
from urllib.parse import urlparse

import pytest
from autobahn.wamp.types import PublishOptions

from autobahn_helpers import Sink, subscribe_log
from cluster_helpers import module_cluster, wait_until
from conftest import ALL_COMBOS, Wamp

pytestmark = pytest.mark.timeout(90)

EVENT_TIMEOUT = 5.0
ADMIN = '[admin]\nlisten = "127.0.0.1:0"\nmetrics_public = true\n'


@pytest.fixture
def cluster(request):
    yield from module_cluster(f"test_cluster_retained_links_{request.node.name}", extra=ADMIN)


@pytest.fixture
async def cw(cluster):
    w = Wamp(cluster[1], ALL_COMBOS[0])
    yield w
    await w.close()


async def retain(session, topic, *args, acknowledge=True):
    opts = PublishOptions(acknowledge=acknowledge, retain=True)
    published = session.publish(topic, *args, options=opts)
    return await asyncio.wait_for(published, EVENT_TIMEOUT) if acknowledge else None


async def retained_on(cw, node, topic, match=None, count=1):
    """The retained events a new get_retained subscriber of `topic` on `node`
    receives: {topic: args}, or None when fewer than `count` came."""
    session = await cw.session(router=node)
    try:
        opts = {"match": match} if match else {}
        log = await subscribe_log(session, topic, get_retained=True, **opts)
        got = {}
        for _ in range(count):
            try:
                args, _, details = await log.get(timeout=1.0)
            except asyncio.TimeoutError:
                return None
            assert details.retained is True
            got[details.topic or topic] = args
        return got
    finally:
        session.leave()


def metrics(node):
    """The node's /metrics as {'name{labels}': value}."""
    u = urlparse(node.listeners["admin"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        assert r.status == 200, r.status
        text = r.read().decode()
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def link_metric(samples, name, peer):
    """The sum of `name` for `peer` over its other labels."""
    return sum(v for k, v in samples.items() if k.startswith(name + "{") and f'peer="{peer}"' in k)


async def test_a_retained_event_reaches_a_subscriber_on_another_node(cluster, cw, unique):
    base = unique()
    on_1 = await cw.session(router=cluster[1])
    pub = await retain(on_1, base + ".a", "from node 1")
    # PUBLISHED came after every node up applied it: no waiting on node 3
    log = await subscribe_log(await cw.session(router=cluster[3]), base + ".a", get_retained=True)
    args, _, details = await log.get(timeout=EVENT_TIMEOUT)
    assert args == ["from node 1"] and details.retained is True and details.publication == pub.id
    # a later publication on another node replaces it everywhere
    await retain(await cw.session(router=cluster[2]), base + ".a", "from node 2")
    await retain(on_1, base + ".b", "b")
    for i in (1, 2, 3):
        got = await retained_on(cw, cluster[i], base, match="prefix", count=2)
        assert got == {base + ".a": ["from node 2"], base + ".b": ["b"]}, (i, got)
    # without acknowledge, the event still reaches the other nodes

    async def probe():
        return await retained_on(cw, cluster[3], base + ".c")

    await retain(on_1, base + ".c", "unacknowledged", acknowledge=False)
    got = await wait_until(probe, EVENT_TIMEOUT, "the unacknowledged retained event on node 3")
    assert got == {base + ".c": ["unacknowledged"]}


async def test_a_retained_event_survives_its_publishers_node(cluster, cw, unique):
    topic = unique()
    await retain(await cw.session(router=cluster[1]), topic, 21.5)
    cluster[1].sigkill()
    w3 = Wamp(cluster[3], ALL_COMBOS[0])
    try:
        got = await retained_on(w3, cluster[3], topic)
        assert got == {topic: [21.5]}, got
        # retaining needs no quorum: with node 1 gone too, node 3 still takes one
        cluster[2].sigkill()
        await retain(await w3.session(router=cluster[3]), topic, 22.0)
        assert await retained_on(w3, cluster[3], topic) == {topic: [22.0]}
    finally:
        await w3.close()


async def test_a_restarted_node_gets_the_retained_set_again(cluster, cw, unique):
    base = unique()
    on_1 = await cw.session(router=cluster[1])
    await retain(on_1, base + ".before", "before")
    loop = asyncio.get_running_loop()
    peers = [cluster.grpc[j] for j in sorted(cluster.grpc) if j != 3]
    assert await loop.run_in_executor(None, cluster[3].stop) == 0
    log = cluster[3].log_path
    log.rename(log.with_name("node3.before-restart.stderr.log"))
    # published while node 3 is down: only the reconnect can tell it
    await retain(on_1, base + ".while_down", "while down")
    await loop.run_in_executor(None, cluster._start_node, 3, peers)
    w3 = Wamp(cluster[3], ALL_COMBOS[0])
    try:
        async def probe():
            return await retained_on(w3, cluster[3], base, match="prefix", count=2)

        got = await wait_until(probe, 15, "the retained set on the restarted node 3")
        assert got == {base + ".before": ["before"], base + ".while_down": ["while down"]}, got
    finally:
        await w3.close()


async def test_frames_lost_on_a_link_break_are_counted(cluster, cw, unique):
    lead = (await cluster.leader()).node_id
    stopped, sender = [i for i in (3, 2, 1) if i != lead][:2]
    topic = unique()
    subscriber = await cw.session(router=cluster[stopped])
    sink = Sink()
    await subscriber.subscribe(sink, topic)
    publisher = await cw.session(router=cluster[sender])
    # the sender's link to the subscriber's node is open (links open on first use)
    await asyncio.wait_for(publisher.publish(topic, 0, options=PublishOptions(acknowledge=True)), 10)
    assert (await sink.get(EVENT_TIMEOUT))[0] == [0]
    loop = asyncio.get_running_loop()
    before = await loop.run_in_executor(None, metrics, cluster[stopped])
    assert link_metric(before, "junction_link_gaps_total", sender) == 0
    assert link_metric(before, "junction_link_frames_received_total", sender) > 0, "frames are counted"
    os.kill(cluster[stopped].proc.pid, signal.SIGSTOP)
    try:
        # events for the stopped node pile up in flight until the sender's keepalive
        # gives up on the link and drops what was queued
        payload = "x" * 32768
        deadline = loop.time() + 30
        n = 0
        while True:
            for _ in range(20):
                n += 1
                publisher.publish(topic, n, payload)
            await asyncio.wait_for(publisher.publish(topic, n, options=PublishOptions(acknowledge=True)), 10)
            sent = await loop.run_in_executor(None, metrics, cluster[sender])
            if link_metric(sent, "junction_link_frames_dropped_total", stopped) > 0:
                break
            assert loop.time() < deadline, f"the sender never dropped frames for the stopped node ({n} published)"
    finally:
        os.kill(cluster[stopped].proc.pid, signal.SIGCONT)

    async def probe():
        m = await loop.run_in_executor(None, metrics, cluster[stopped])
        gaps = link_metric(m, "junction_link_gaps_total", sender)
        missed = link_metric(m, "junction_link_frames_missed_total", sender)
        return (gaps, missed) if gaps > 0 and missed > 0 else None

    gaps, missed = await wait_until(probe, 20, "a gap counted by the node whose link broke")
    assert gaps >= 1 and missed >= 1
    # the cluster status shows the counters per link
    st = await cluster.status(stopped)
    assert re.search(rf"^\s+{sender}\s.*missed [1-9]", st.text, re.M), st.text
