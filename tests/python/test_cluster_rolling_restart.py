"""A rolling restart of a 3-node cluster under load loses no call.

Callers on every node keep calling a `roundrobin` procedure served by callees on
every node, and a publisher keeps publishing (acknowledged) to a subscriber on
another node, while each node in turn gets SIGTERM (graceful drain: its
registrations are withdrawn, invocations it serves finish, then GOODBYE
`wamp.close.system_shutdown`) and is started again with the same data directory.
Clients whose node leaves reconnect to another node that is ready. The next node is
restarted once the restarted one's `/readyz` answers 200, calls and events flow
again, and every callee is registered again.

Every call issued must get a RESULT or an ERROR (a call whose caller's own session
was closed under it fails on the client, which also counts as an answer): issued
calls == results + errors, none hangs. Likewise for acknowledged publications.

A second run checks that the cluster is healthy afterwards: the registration's
callees are exactly the callee sessions alive, and calls on every node succeed. It
found an orphaned callee about one run in three: a forwarded REGISTER retried after
the leader stopped before answering was committed twice, the session kept neither
(the session now takes such an entry as its own: `rpc::unowned_entry`, unit test
`a_register_committed_without_the_session_hearing_of_it_becomes_its_own`). Each
run takes a few seconds (pytest timeout 90 s)."""

import asyncio
import collections
import itertools
import shutil
import time
import urllib.error
import urllib.request

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import CallOptions, PublishOptions, RegisterOptions

from cluster_helpers import Cluster, wait_until
from conftest import ALL_COMBOS, connect_session

pytestmark = pytest.mark.timeout(90)

PROC = "com.rolling.echo"
TOPIC = "com.rolling.tick"
NODES = (1, 2, 3)
ANSWER_TIMEOUT = 20.0  # a call or acknowledged publish without an answer by then is lost
PROGRESS_TIMEOUT = 20.0  # calls, events and callees must be back this soon after a restart
READY_TIMEOUT = 20.0
# A draining node closes new connections at once, but conftest's connect_session
# notices a closed transport only once the WAMP session opened (else it waits
# JOIN_TIMEOUT); clients check /readyz first, and joining a ready node takes
# milliseconds.
CONNECT_TIMEOUT = 3.0



class Watched:
    """A value whose changes can be awaited: `await w.until(pred, timeout, what)`."""

    def __init__(self, value):
        self.value = value
        self._waiters = []  # (predicate, future)

    def set(self, value):
        self.value = value
        for pred, fut in self._waiters:
            if not fut.done() and pred(value):
                fut.set_result(None)

    def add(self, n=1):
        self.set(self.value + n)

    async def until(self, pred, timeout, what):
        if pred(self.value):
            return
        entry = (pred, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(entry[1], timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None
        finally:
            self._waiters.remove(entry)


def readyz(node):
    try:
        with urllib.request.urlopen(f"{node.listeners['admin']}/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Load:
    """The clients: callees, callers, a publisher and a subscriber, each in a loop
    that reconnects (to its own node, else the next ready ones) whenever its
    session ends."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.issued = 0
        self.results = Watched(0)
        self.errors = collections.Counter()  # error URI (or exception) -> count
        self.lost = 0
        self.published = 0
        self.acked = 0
        self.publish_errors = 0
        self.publish_lost = 0
        self.events = Watched(0)
        self.registered = Watched(frozenset())  # callees (by preferred node) registered now
        self.live_callees = {}  # session id -> preferred node, of the registered callees
        self.served = {i: 0 for i in NODES}  # invocations served, by the callee's node
        self.sessions = []
        self.tasks = []
        self.stopped = asyncio.Event()

    def summary(self):
        return (f"calls issued {self.issued}, results {self.results.value}, errors {dict(self.errors)}, "
                f"lost {self.lost}; served per node {self.served}; publications {self.published}, acked "
                f"{self.acked}, errors {self.publish_errors}, lost {self.publish_lost}; "
                f"events {self.events.value}")

    def finish(self):
        self.stopped.set()
        for s in self.sessions:
            if s.is_attached():
                s.leave()

    async def session(self, prefer, combo):
        """A joined session on `prefer` or, while it is away, on the next node
        (so clients leaving different nodes spread over the others)."""
        order = [(prefer - 1 + k) % len(NODES) + 1 for k in range(len(NODES))]
        while not self.stopped.is_set():
            for i in order:
                node = self.cluster.nodes.get(i)
                if node is None or not node.alive() or not await asyncio.to_thread(readyz, node):
                    continue
                try:
                    s = await asyncio.wait_for(connect_session(node, combo), CONNECT_TIMEOUT)
                except Exception:  # noqa: BLE001 - it started draining meanwhile: try the next
                    continue
                self.sessions.append(s)
                return i, s
            await asyncio.sleep(0.05)  # retry back-off: no node was ready at this instant
        return None, None

    async def until_gone(self, s):
        stopped = asyncio.ensure_future(self.stopped.wait())
        await asyncio.wait([s.left, s.disconnected, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()

    async def callee(self, prefer, combo):
        while not self.stopped.is_set():
            node, s = await self.session(prefer, combo)
            if s is None:
                return

            def echo(x, node=node):
                self.served[node] += 1
                return x

            try:
                await s.register(echo, PROC, options=RegisterOptions(invoke="roundrobin"))
            except Exception:  # noqa: BLE001 - refused, or the session closed while registering
                if s.is_attached():
                    s.leave()
                continue
            session_id = s.session_id
            self.live_callees[session_id] = prefer
            self.registered.set(self.registered.value | {prefer})
            await self.until_gone(s)
            del self.live_callees[session_id]
            self.registered.set(self.registered.value - {prefer})

    async def subscriber(self, prefer, combo):
        while not self.stopped.is_set():
            _, s = await self.session(prefer, combo)
            if s is None:
                return
            try:
                await s.subscribe(lambda _n: self.events.add(), TOPIC)
            except Exception:  # noqa: BLE001 - refused, or the session closed while subscribing
                if s.is_attached():
                    s.leave()
                continue
            await self.until_gone(s)

    async def caller(self, prefer, combo):
        counter = itertools.count()
        while not self.stopped.is_set():
            _, s = await self.session(prefer, combo)
            if s is None:
                return
            while not self.stopped.is_set() and s.is_attached():
                n = next(counter)
                self.issued += 1
                try:
                    got = await asyncio.wait_for(s.call(PROC, n, options=CallOptions(timeout=10_000)), ANSWER_TIMEOUT)
                    assert got == n, (got, n)
                    self.results.add()
                except asyncio.TimeoutError:
                    self.lost += 1
                except ApplicationError as e:
                    self.errors[e.error] += 1
                except Exception as e:  # noqa: BLE001 - session closed under the call: an error answer
                    self.errors[type(e).__name__] += 1

    async def publisher(self, prefer, combo):
        counter = itertools.count()
        while not self.stopped.is_set():
            _, s = await self.session(prefer, combo)
            if s is None:
                return
            while not self.stopped.is_set() and s.is_attached():
                self.published += 1
                try:
                    await asyncio.wait_for(s.publish(TOPIC, next(counter), options=PublishOptions(acknowledge=True)),
                                           ANSWER_TIMEOUT)
                    self.acked += 1
                except asyncio.TimeoutError:
                    self.publish_lost += 1
                except Exception:  # noqa: BLE001 - an ERROR, or the session closed under it
                    self.publish_errors += 1
                await asyncio.sleep(0.01)  # pacing (~100 publications/s), not synchronisation

    async def flowing(self, what):
        """Calls and events flow and every callee is registered."""
        await self.results.until(lambda v, n=self.results.value: v >= n + 20, PROGRESS_TIMEOUT,
                                 f"calls {what} ({self.summary()})")
        await self.events.until(lambda v, n=self.events.value: v >= n + 5, PROGRESS_TIMEOUT,
                                f"events {what} ({self.summary()})")
        await self.registered.until(lambda v: len(v) == len(NODES), PROGRESS_TIMEOUT,
                                    f"every callee registered {what} ({self.summary()})")


async def wait_ready(node):
    """Polls the node's /readyz (an HTTP probe has no event to await) until 200."""
    async def probe():
        return await asyncio.to_thread(readyz, node)

    await wait_until(probe, READY_TIMEOUT, f"/readyz of node {node.node_id}", interval=0.1)


@pytest.fixture
def cluster(request):
    c = Cluster(f"test_cluster_rolling_restart_{request.node.name}", n=len(NODES))
    for i in NODES:
        shutil.rmtree(c.log_dir / f"node{i}-data", ignore_errors=True)
    original = c._start_node

    def start_node(i, peers):
        c.extra = f'data_dir = "{c.log_dir / f"node{i}-data"}"\n[admin]\nlisten = "127.0.0.1:0"\n'
        return original(i, peers)

    c._start_node = start_node
    c.start()
    yield c
    crashed = c.stop()
    assert not crashed, crashed


async def rolling_restart(cluster):
    """Starts the load, restarts nodes 3, 2, 1 in turn, and returns the running load."""
    for i in NODES:
        await wait_ready(cluster[i])
    load = Load(cluster)
    load.tasks += [asyncio.ensure_future(load.callee(i, ALL_COMBOS[i])) for i in NODES]
    load.tasks.append(asyncio.ensure_future(load.subscriber(3, ALL_COMBOS[0])))
    await load.registered.until(lambda v: len(v) == len(NODES), PROGRESS_TIMEOUT, "the callees")
    await cluster.sync()
    load.tasks += [asyncio.ensure_future(load.caller(i, ALL_COMBOS[i + 2])) for i in NODES]
    load.tasks.append(asyncio.ensure_future(load.publisher(1, ALL_COMBOS[3])))
    await load.flowing("before the restarts")
    loop = asyncio.get_running_loop()
    for i in (3, 2, 1):
        peers = [cluster.grpc[j] for j in sorted(cluster.grpc) if j != i]
        code = await loop.run_in_executor(None, cluster[i].stop)
        assert code == 0, f"node {i} exited {code} on SIGTERM; {load.summary()}"
        log = cluster[i].log_path
        log.rename(log.with_name(f"node{i}.before-restart.stderr.log"))  # the next start truncates it
        restarted = await loop.run_in_executor(None, cluster._start_node, i, peers)
        await wait_ready(restarted)
        await load.flowing(f"after node {i} restarted")
    return load


async def stop_load(load):
    load.finish()
    _, pending = await asyncio.wait(load.tasks, timeout=ANSWER_TIMEOUT + 5)
    assert not pending, [t.get_stack() for t in pending]


async def test_rolling_restart_loses_no_calls(cluster):
    started = time.monotonic()
    load = await rolling_restart(cluster)
    await stop_load(load)
    print(f"rolling restart in {time.monotonic() - started:.1f} s: {load.summary()}")
    assert load.lost == 0 and load.publish_lost == 0, f"requests without any answer: {load.summary()}"
    assert load.issued == load.results.value + sum(load.errors.values()), load.summary()
    assert load.published == load.acked + load.publish_errors, load.summary()
    assert load.results.value > 100, load.summary()
    assert all(v > 0 for v in load.served.values()), load.summary()


async def test_cluster_is_healthy_after_a_rolling_restart(cluster):
    load = await rolling_restart(cluster)
    try:
        live = set(load.live_callees)
        for i in NODES:
            probe = await connect_session(cluster[i], ALL_COMBOS[0])
            try:
                reg = await probe.call("wamp.registration.lookup", PROC)
                callees = set(await probe.call("wamp.registration.list_callees", reg))
                assert callees == live, f"node {i}: callees {callees}, alive {live}; {load.summary()}"
                for n in range(30):
                    assert await probe.call(PROC, n) == n
            finally:
                probe.leave()
    finally:
        await stop_load(load)
