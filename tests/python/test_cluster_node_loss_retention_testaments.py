# Advanced Profile features that must survive the loss of a node (3-node
# cluster, node 2 SIGKILLed):
#
# - event_retention: a retained event published through node 2 is kept in the
#   replicated routing table; after node 2 dies, a new subscriber with
#   get_retained on node 3 (exact) and on node 1 (prefix) still gets it.
# - testament_meta_api: "a testament also fires when the session's node dies"
#   (issue 5): a session on node 2 with a testament; node 2 is killed; a
#   subscriber on node 3 gets the testament event exactly once (testaments are
#   replicated; the lowest surviving node publishes the dead node's ones); and
#   once when the node was only paused past its lease (SIGSTOP) and resumes.
#
# Each test starts its own cluster (it kills a node), so the two are independent.
# Node logs: target/test-logs/cluster/test_cluster_node_loss_retention_testaments_<test>/node<N>.stderr.log.
import asyncio
import os
import signal

import pytest
from autobahn.wamp.types import PublishOptions

from autobahn_helpers import call, subscribe_log
from cluster_helpers import module_cluster
from conftest import ALL_COMBOS, Wamp

pytestmark = pytest.mark.timeout(45)

# how long the survivors may take to notice the dead node (lease 2 s) and act
NODE_LOSS_GRACE = 10.0


@pytest.fixture
def cluster(request):
    yield from module_cluster(f"test_cluster_node_loss_retention_testaments_{request.node.name}")


@pytest.fixture
async def cw(cluster):
    w = Wamp(cluster[1], ALL_COMBOS[0])
    yield w
    await w.close()


async def test_retained_event_survives_the_publishers_node(cluster, cw, unique):
    base = unique()
    publisher = await cw.session(router=cluster[2])
    pub = await publisher.publish(base + ".temp", 21.5, unit="C",
                                  options=PublishOptions(acknowledge=True, retain=True))
    await publisher.publish(base + ".hum", 40, options=PublishOptions(acknowledge=True, retain=True))
    # every node has applied the retained events
    await cluster.sync()
    cluster[2].sigkill()
    await cluster.leader(ids=[1, 3], timeout=NODE_LOSS_GRACE)
    s3 = await cw.session(router=cluster[3], combo=ALL_COMBOS[4])  # rs-msgpack
    log = await subscribe_log(s3, base + ".temp", get_retained=True)
    args, kwargs, details = await log.get()
    assert args == [21.5] and kwargs == {"unit": "C"}, (args, kwargs)
    assert details.retained is True and details.publication == pub.id
    s1 = await cw.session(router=cluster[1])
    plog = await subscribe_log(s1, base, match="prefix", get_retained=True)
    got = {}
    for _ in range(2):
        args, _, details = await plog.get()
        assert details.retained is True
        got[details.topic] = args
    assert got == {base + ".temp": [21.5], base + ".hum": [40]}, got
    # the survivors still keep new retained events
    await s1.publish(base + ".temp", 22.0, options=PublishOptions(acknowledge=True, retain=True))
    await cluster.sync(ids=[1, 3])
    log2 = await subscribe_log(await cw.session(router=cluster[3]), base + ".temp", get_retained=True)
    assert (await log2.get())[0] == [22.0]


async def test_testament_fires_when_the_sessions_node_dies(cluster, cw, unique):
    topic = unique()
    watcher = await cw.session(router=cluster[3])
    log = await subscribe_log(watcher, topic)
    testator = await cw.session(router=cluster[2], combo=ALL_COMBOS[4])
    await call(testator, "wamp.session.add_testament", topic, ["node gone"], {"who": "testator"})
    await cluster.sync()
    cluster[2].sigkill()
    try:
        args, kwargs, _ = await log.get(timeout=NODE_LOSS_GRACE)
    except asyncio.TimeoutError:
        pytest.fail(f"no testament event on node 3 within {NODE_LOSS_GRACE}s after node 2 (the testator's node) "
                    f"was killed")
    assert (args, kwargs) == (["node gone"], {"who": "testator"})
    # published once, by one survivor: a barrier event published after the
    # cluster settled arrives next, with no second testament before it
    await cluster.sync(ids=[1, 3])
    await call(watcher, "wamp.session.count")
    barrier = await cw.session(router=cluster[1])
    await barrier.publish(topic, "barrier", options=PublishOptions(acknowledge=True))
    args, _, _ = await log.get(timeout=NODE_LOSS_GRACE)
    assert args == ["barrier"], f"testament published more than once: {args}"


async def test_testament_fires_once_when_the_sessions_node_pauses_past_its_lease(cluster, cw, unique):
    # SIGSTOP, not SIGKILL: the survivors publish the testament when they declare
    # node 2 down; node 2, resumed, learns it was declared down and ends its
    # sessions, and must not publish the testament a second time
    topic = unique()
    watcher = await cw.session(router=cluster[3])
    log = await subscribe_log(watcher, topic)
    testator = await cw.session(router=cluster[2], combo=ALL_COMBOS[4])
    await call(testator, "wamp.session.add_testament", topic, ["node paused"], {"who": "testator"})
    await cluster.sync()
    paused = cluster[2]
    os.kill(paused.proc.pid, signal.SIGSTOP)
    try:
        args, kwargs, _ = await log.get(timeout=NODE_LOSS_GRACE)
        assert (args, kwargs) == (["node paused"], {"who": "testator"})
    finally:
        os.kill(paused.proc.pid, signal.SIGCONT)
    # node 2 ends the testator's session once it applies its own purge
    close = await asyncio.wait_for(asyncio.shield(testator.left), NODE_LOSS_GRACE)
    assert close.reason == "wamp.close.system_shutdown", close
    # anything node 2 published while ending its sessions reaches node 3 before an
    # event node 2 publishes afterwards (one ordered link): a barrier from node 2
    barrier = await cw.session(router=cluster[2])
    await barrier.publish(topic, "barrier", options=PublishOptions(acknowledge=True, exclude_me=False))
    args, _, _ = await log.get(timeout=NODE_LOSS_GRACE)
    assert args == ["barrier"], f"testament published a second time by the resumed node: {args}"
