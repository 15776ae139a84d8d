"""A rolling restart of a 3-node cluster under load loses no calls: callers on
every node keep calling a `roundrobin` procedure served by callees on every node
while each node in turn gets SIGTERM (graceful drain: GOODBYE
wamp.close.system_shutdown, in-flight calls answered) and is started again with
the same data directory. Clients reconnect to another node when theirs leaves.
Every call issued must get a RESULT or an ERROR (a call whose caller's own
session was closed under it fails on the client, which also counts as an
answer); none may hang, and calls succeed again after each restart."""

import asyncio
import itertools
import shutil

import pytest
from autobahn.wamp.exception import ApplicationError, TransportLost
from autobahn.wamp.types import CallOptions, RegisterOptions

from cluster_helpers import Cluster
from conftest import ALL_COMBOS, connect_session

pytestmark = pytest.mark.timeout(150)

PROC = "com.rolling.echo"
ANSWER_TIMEOUT = 20.0


class Load:
    def __init__(self, cluster):
        self.cluster = cluster
        self.issued = 0
        self.results = 0
        self.errors = 0
        self.lost = 0
        self.stop = False
        self.served = {1: 0, 2: 0, 3: 0}
        self.sessions = []
        self.stopped = asyncio.Event()

    def finish(self):
        self.stop = True
        self.stopped.set()
        for s in self.sessions:
            if s.is_attached():
                s.leave()

    def live_nodes(self, prefer):
        ids = [i for i in (prefer, 1, 2, 3) if i in self.cluster.nodes and self.cluster.nodes[i].alive()]
        return list(dict.fromkeys(ids))

    async def session(self, prefer, combo):
        while not self.stop:
            for i in self.live_nodes(prefer):
                try:
                    s = await connect_session(self.cluster[i], combo)
                    self.sessions.append(s)
                    return i, s
                except Exception:  # noqa: BLE001 - the node is going away: try the next
                    continue
            await asyncio.sleep(0.05)  # every node is restarting at this instant: retry soon
        return None, None

    async def callee(self, prefer, combo):
        while not self.stop:
            node, s = await self.session(prefer, combo)
            if s is None:
                return
            try:
                await s.register(lambda x, n=node: (self.served.__setitem__(n, self.served[n] + 1), x)[1], PROC,
                                 options=RegisterOptions(invoke="roundrobin"))
            except Exception:  # noqa: BLE001 - the session closed while registering
                continue
            stopped = asyncio.ensure_future(self.stopped.wait())
            await asyncio.wait([s.left, s.disconnected, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()

    async def caller(self, prefer, combo):
        counter = itertools.count()
        while not self.stop:
            node, s = await self.session(prefer, combo)
            if s is None:
                return
            while not self.stop and s.is_attached():
                n = next(counter)
                self.issued += 1
                try:
                    got = await asyncio.wait_for(s.call(PROC, n, options=CallOptions(timeout=10_000)), ANSWER_TIMEOUT)
                    assert got == n, (got, n)
                    self.results += 1
                except asyncio.TimeoutError:
                    self.lost += 1
                except (ApplicationError, TransportLost):
                    self.errors += 1
                except Exception:  # noqa: BLE001 - session closed under the call: an error answer
                    self.errors += 1
                if self.stop:
                    break


@pytest.fixture
def cluster(request):
    c = Cluster(f"test_cluster_rolling_restart_{request.node.name}", n=3)
    for i in (1, 2, 3):
        shutil.rmtree(c.log_dir / f"node{i}-data", ignore_errors=True)
    original = c._start_node

    def start_node(i, peers):
        c.extra = f'data_dir = "{c.log_dir / f"node{i}-data"}"\n'
        return original(i, peers)

    c._start_node = start_node
    c.start()
    yield c
    crashed = c.stop()
    assert not crashed, crashed


async def wait_serving(load, before, timeout=30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while load.results < before + 20:
        assert loop.time() < deadline, f"calls did not succeed again: {vars(load)}"
        await asyncio.sleep(0.1)  # polling the load counters, which have no event


async def test_rolling_restart_loses_no_calls(cluster):
    load = Load(cluster)
    tasks = [asyncio.ensure_future(load.callee(i, ALL_COMBOS[i])) for i in (1, 2, 3)]
    await cluster.sync()
    tasks += [asyncio.ensure_future(load.caller(i, ALL_COMBOS[i + 2])) for i in (1, 2, 3)]
    await wait_serving(load, 0)
    for i in (3, 2, 1):
        node = cluster[i]
        peers = [cluster.grpc[j] for j in sorted(cluster.grpc) if j != i]
        await asyncio.get_running_loop().run_in_executor(None, node.stop)
        assert node.proc.returncode == 0, f"node {i} exited {node.proc.returncode} on SIGTERM"
        await asyncio.get_running_loop().run_in_executor(None, cluster._start_node, i, peers)
        await cluster.leader(timeout=20)
        await wait_serving(load, load.results)
    load.finish()
    _, pending = await asyncio.wait(tasks, timeout=ANSWER_TIMEOUT + 10)
    assert not pending, [t.get_stack() for t in pending]
    print(f"rolling restart: issued {load.issued}, results {load.results}, errors {load.errors}, "
          f"lost {load.lost}, served per node {load.served}")
    assert load.lost == 0, f"calls without any answer: {vars(load)}"
    assert load.issued == load.results + load.errors, vars(load)
    assert load.results > 100, vars(load)
    assert all(v > 0 for v in load.served.values()), load.served
