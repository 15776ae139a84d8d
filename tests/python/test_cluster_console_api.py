"""The admin procedures the web console uses, on a real 2-node cluster (no browser;
tests/python/test_console.py drives the page itself):

- `junction.cluster.stats`: every node's counters (with call latency
  percentiles) and its links, both directions up;
- `junction.registration.callees`: a shared procedure's callees with the node
  each is connected to;
- `junction.session.kill`: kills a session held by another node."""

import asyncio

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import RegisterOptions

from cluster_helpers import start_cluster, wait_until
from conftest import ALL_COMBOS, connect_session

pytestmark = pytest.mark.timeout(60)

EXTRA = """
[admin]
listen = ""
realm = "realm1"

[[realms]]
name = "realm1"
[realms.auth.anonymous]
role = "admin"
"""


async def test_cluster_stats_callees_and_kill_across_nodes(request):
    cluster = start_cluster(f"test_cluster_console_api_{request.node.name}", n=2, extra=EXTRA)
    try:
        combo = ALL_COMBOS[0]
        admin = await connect_session(cluster[1], combo)
        callees = [await connect_session(cluster[i], combo) for i in (1, 2)]
        for c in callees:
            await c.register(lambda: "ok", "com.console.api", options=RegisterOptions(invoke="roundrobin"))
        caller = await connect_session(cluster[2], combo)
        victim = await connect_session(cluster[2], combo)
        victim_id = victim.session_id
        await cluster.sync()
        for _ in range(4):
            assert await caller.call("com.console.api") == "ok"

        async def stats():
            doc = await admin.call("junction.cluster.stats")
            nodes = {n["node"]: n for n in doc["nodes"]}
            links_up = all(any(l["node"] == other and l["state"] == "up" for l in nodes[me].get("links", []))
                           for me, other in ((1, 2), (2, 1)) if me in nodes)
            return set(nodes) == {1, 2} and links_up and nodes

        nodes = await wait_until(stats, 10, "both nodes' stats with their links up")
        assert [n["node"] for n in (await admin.call("junction.cluster.stats"))["nodes"]] == [1, 2]
        assert all(n["answered"] for n in nodes.values()), nodes
        assert nodes[2]["calls_completed"] >= 4, nodes[2]  # the caller's node times the calls
        lat = nodes[2]["call_latency"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"], lat
        assert sum(n for _, n in lat["buckets"]) == nodes[2]["calls_completed"], lat

        regs = await admin.call("wamp.registration.lookup", "com.console.api")
        doc = await admin.call("junction.registration.callees", regs)
        assert doc["procedure"] == "com.console.api", doc
        assert {(c["session"], c["node"]) for c in doc["callees"]} == {(callees[0].session_id, 1),
                                                                      (callees[1].session_id, 2)}, doc
        with pytest.raises(ApplicationError) as e:
            await admin.call("junction.registration.callees", 424242)
        assert e.value.error == "wamp.error.no_such_registration"

        await admin.call("junction.session.kill", victim_id, message="from node 1")  # the victim is on node 2
        details = await asyncio.wait_for(asyncio.shield(victim.left), 10)
        assert (details.reason, details.message) == ("wamp.close.killed", "from node 1"), details
        with pytest.raises(ApplicationError) as e:
            await admin.call("junction.session.kill", 42)  # on no node
        assert e.value.error == "wamp.error.no_such_session"
        for s in (admin, caller, *callees):
            s.leave()
    finally:
        cluster.stop()
