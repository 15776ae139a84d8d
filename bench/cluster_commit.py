"""Registration commit latency and replication lag on a running Junction cluster.

REGISTER on one node is answered once the Raft entry is committed and applied there;
this measures that round trip (p50/p99 over N registrations), and how long until
another node sees the registration (`wamp.registration.lookup` answered there),
i.e. the replication lag plus one meta call. Prints one `RESULT {json}` line.

Usage: python bench/cluster_commit.py WS_URL_A WS_URL_B [N]
"""

import asyncio
import json
import sys
import time

from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.serializer import MsgPackSerializer
from autobahn.wamp.types import ComponentConfig
from urllib.parse import urlparse


async def connect(url):
    loop = asyncio.get_running_loop()
    joined = loop.create_future()

    class S(ApplicationSession):
        async def onJoin(self, details):
            joined.set_result(self)

    u = urlparse(url)
    f = WampWebSocketClientFactory(lambda: S(ComponentConfig("realm1")), url=url, serializers=[MsgPackSerializer()])
    await loop.create_connection(f, u.hostname, u.port)
    return await asyncio.wait_for(joined, 10)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


async def main(url_a, url_b, n):
    a, b = await connect(url_a), await connect(url_b)
    commit, lag = [], []
    for i in range(n):
        uri = f"bench.commit.{time.time_ns()}.{i}"
        t0 = time.perf_counter()
        reg = await a.register(lambda: None, uri)
        t1 = time.perf_counter()
        while await b.call("wamp.registration.lookup", uri) is None:
            pass
        t2 = time.perf_counter()
        commit.append((t1 - t0) * 1e6)
        lag.append((t2 - t1) * 1e6)
        await reg.unregister()
    out = {
        "scenario": "register-commit",
        "count": n,
        "commit_us": {"p50": pct(commit, 0.5), "p99": pct(commit, 0.99), "max": max(commit)},
        "replication_lag_us": {"p50": pct(lag, 0.5), "p99": pct(lag, 0.99), "max": max(lag)},
    }
    print("RESULT " + json.dumps(out))


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 300))
