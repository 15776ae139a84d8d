"""Fault suite (issue #13, point 6): a real 3-node cluster under a workload in
which every call, invocation, event and testament carries a unique id, while a
nemesis injects faults; fault_checker.py then checks the recorded histories
(its module doc defines each property).

Workload (clients are bound to a node and reconnect to it once it is ready
again, checked through /readyz):
- callers on every node calling a shared `roundrobin` procedure served by
  callees on every node; each invocation records (call id, callee node, time
  started); handlers take 5-40 ms;
- a `single` procedure: a candidate callee on every node retries REGISTER until
  it succeeds, so when the owner's node dies a standby takes it over; callers
  on every node call it too;
- publishers on every node publishing acknowledged events with unique ids to
  subscribers on every node;
- testators on every node (wamp.session.add_testament with a unique id), and
  an observer per node subscribed to the testament topic.

Where the nodes run: each in its own network namespace (cluster_helpers.NetLab:
a cluster bridge carrying gRPC, which a partition cuts per node, and a client
bridge the test's clients use from the host), listening on fixed ports of its
own addresses, so a restarted node has the same addresses. Without network
namespaces (not root, no iproute2) the nodes run on 127.0.0.1 and the nemesis
makes no partitions (the summary says why).

Nemesis: fault kinds in rounds, every kind once per round in an order drawn
from a seed (printed; JUNCTION_FAULT_SEED=N repeats it); single-node faults hit
the node that owns the `single` registration. Each fault is followed by
waiting until the cluster is healed (every member up from the leader's view,
every node applied up to the leader's commit index, /readyz) and a quiet
period:
- kill: kill -9, wait until the survivors declared the node down, restart it
  with the same data dir;
- stop: SIGSTOP for 4 x the lease (lease_ms = 2000), then SIGCONT;
- partition: the node's cluster link is cut (its clients still reach it), kept
  cut until the majority declared it down and 2 x the lease more, then healed;
  every other partition cuts off the Raft leader instead of the `single` owner;
  the node learns it was declared down and ends its sessions, its clients
  reconnect;
- restart-term / restart-kill: every node SIGTERMed (graceful drain) / kill
  -9ed at once, then all started again on their data dirs and ports; calls
  tried meanwhile (raw clients, while draining and once everything is down)
  must be refused or answered, never hang; the workload's clients reconnect,
  register and subscribe again, as real clients do.
A restarted / resumed node still declared down 10 s later is recorded as stuck
and restarted again (kill -9, same data dir), so one stuck node does not end
the run.

The run lasts JUNCTION_FAULT_SECONDS (default 90; the nemesis goes on past it
until every kind ran once) plus a quiet tail (about two minutes in all; 600
gives a long soak). The module's fixture runs it once; each test function
checks one property. Found by this suite and fixed (asserted now): a
subscriber that subscribed while the cluster came back from a whole-cluster
restart getting no events published on another node (a node sent the whole
interest but not counted up was told no change; asserted since about 80
whole-cluster restarts passed without a loss, against one in ~40 before);
testaments of a SIGSTOPped node's
sessions published twice; a restarted node declared down in its new
incarnation (its lease counted from before the restart) and stuck; calls
issued during a SIGSTOP never answered; invocations started on a node resuming
from SIGSTOP after their callers got wamp.error.canceled (~31 a run) and the
frozen `single` owner serving again after the standby took over (~5 a run),
and the `single` owner's node cut off by a partition serving its own callers
beside the standby (every partition that cut it off) — all fixed by fencing
(dealer `start_within`, cluster/fence.rs).
The summary table is printed and written to
target/test-logs/cluster/test_cluster_faults/summary.md, the histories to
history.json next to it, with the node logs (node<N>.stderr.log, and
node<N>.before-<kind><K> / before-stuck<K>.stderr.log from before a restart)."""

import asyncio
import collections
import dataclasses
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from autobahn.wamp import message
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import PublishOptions, RegisterOptions, SubscribeOptions

import fault_checker as fc
import wampraw
from cluster_helpers import Cluster, NetLab, netns_unavailable_reason, wait_until
from conftest import ALL_COMBOS, RouterError, TestSession, connect_session

NODES = (1, 2, 3)
LEASE_MS = 2000
LEASE = LEASE_MS / 1000
DURATION = float(os.environ.get("JUNCTION_FAULT_SECONDS", "90"))
PROC = "com.faults.rr"
SINGLE = "com.faults.single"
TOPIC = "com.faults.events"
TESTAMENTS = "com.faults.testaments"
CALL_PERIOD = 0.06  # per caller, roundrobin procedure
SINGLE_PERIOD = 0.2  # per caller, single procedure
PUBLISH_PERIOD = 0.1  # per publisher
STOP_FOR = 4 * LEASE  # SIGSTOP past the lease (x4: the standby takes `single` over 3-4 s into the stop,
# so whatever the frozen owner serves once resumed comes more than a lease after that)
DOWN_FOR = 0.5  # a killed node stays down this long after it was declared down
QUIET = 4.0  # between a healed fault and the next one
SETTLE = 1.0  # a fault window ends this long after the cluster healed
EVENT_GRACE = 2.0  # an owed event must arrive within this long after PUBLISHED
ANSWER_GRACE = 20.0  # calls still unanswered this long after the load stopped are never answered
TAIL = 12.0  # quiet tail after the last fault (>= the survivors' time to fire testaments)
HEAL_TIMEOUT = 40.0
REJOIN_DEADLINE = 10.0  # a restarted / resumed node is up again this soon, else it is stuck
READY_TIMEOUT = 20.0
CONNECT_TIMEOUT = 3.0
REGISTER_RETRY = 0.2
PARTITION_HOLD = 2 * LEASE  # a cut-off node stays cut off this long after the others declared it down
TERM_TIMEOUT = 30.0  # a SIGTERMed node has exited this soon (drain_timeout_ms 10 s + shutdown_grace_ms 2 s + ...)
PROBE_TIMEOUT = 5.0  # a call attempted while every node is down is refused / answered this soon
# ports of the nodes' listeners in their namespaces (each node has its own addresses: no
# clash); the same after a restart
WS_PORT, RS_PORT, ADMIN_PORT = 8080, 8081, 8090
KINDS = ("kill", "stop", "partition", "restart-term", "restart-kill")
SEED = int(os.environ.get("JUNCTION_FAULT_SEED") or random.SystemRandom().randrange(1 << 32))

pytestmark = pytest.mark.timeout(int(DURATION) + 240)


def readyz(node):
    try:
        with urllib.request.urlopen(f"{node.listeners['admin']}/readyz", timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class RecordingSession(TestSession):
    """A TestSession counting, per request id, the RESULT / ERROR(CALL) messages
    it receives (before Autobahn drops a second one) and when the first came."""

    __test__ = False

    def __init__(self, config=None):
        super().__init__(config)
        self.answers = collections.Counter()
        self.first_answer = {}

    def onMessage(self, msg):
        if isinstance(msg, message.Result) or (isinstance(msg, message.Error)
                                               and msg.request_type == message.Call.MESSAGE_TYPE):
            self.answers[msg.request] += 1
            self.first_answer.setdefault(msg.request, asyncio.get_running_loop().time())
        return super().onMessage(msg)


class Run:
    """The workload, the nemesis and everything they recorded."""

    def __init__(self, cluster, lab=None):
        self.cluster = cluster
        self.lab = lab  # NetLab (nodes in namespaces) or None: no partitions
        self.kinds = KINDS if lab is not None else tuple(k for k in KINDS if k != "partition")
        self.rng = random.Random(SEED)  # the nemesis's choices
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()  # the load stops issuing
        self.closing = asyncio.Event()  # every client leaves
        self.calls = []
        self.call_tasks = []
        self.invocations = []
        self.publications = []
        self.subscriptions = []
        self.testaments = []
        self.testament_by_id = {}
        self.faults = []
        self.nemesis_log = []
        self.live_testaments = {}  # node -> [Testament] of live testators
        self.single_owner = None  # node of the callee that last registered SINGLE
        self.observing = True
        self.sessions = []
        self.tasks = []
        self.ids = itertools.count()
        self.stopped_pid = None
        self.end = None
        self.task_errors = []
        self.register_refusals = collections.Counter()  # `single` REGISTER errors by URI
        self.stuck = []  # restarted / resumed nodes that stayed declared down
        self.note = ""  # what the current fault adds to its nemesis log line
        self.outage_probes = []  # (fault kind, phase, node, outcome, seconds): calls tried during a restart
        self.shutdown_issues = []  # SIGTERMed nodes that hung or exited non-zero

    def now(self):
        return self.loop.time()

    def uid(self, prefix):
        return f"{prefix}{next(self.ids)}"

    # --- clients ---------------------------------------------------------
    async def session(self, i, combo):
        """A joined session on node i, once it is ready (None once closing)."""
        while not self.closing.is_set():
            node = self.cluster.nodes.get(i)
            if node is not None and node.alive() and not node.killed and node.proc.pid != self.stopped_pid \
                    and await asyncio.to_thread(readyz, node):
                try:
                    s = await asyncio.wait_for(connect_session(node, combo, session_cls=RecordingSession),
                                               CONNECT_TIMEOUT)
                    self.sessions.append(s)
                    return s
                except Exception:  # noqa: BLE001 - the node died meanwhile: retry
                    pass
            await asyncio.sleep(0.1)  # retry back-off while the node is down
        return None

    async def until_gone(self, s, ev):
        waiter = asyncio.ensure_future(ev.wait())
        await asyncio.wait([s.left, s.disconnected, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    def label(self, kind, i, s):
        return f"{kind}@n{i}/{s.session_id}"

    async def callee(self, i, combo):
        while not self.closing.is_set():
            s = await self.session(i, combo)
            if s is None:
                return
            label = self.label("callee", i, s)

            async def serve(call_id, label=label, node=i):
                inv = fc.Invocation(call_id, PROC, label, node, self.now())
                self.invocations.append(inv)
                await asyncio.sleep(random.uniform(0.005, 0.04))  # the work
                inv.ended_at = self.now()
                return [call_id, node]

            try:
                await s.register(serve, PROC, options=RegisterOptions(invoke="roundrobin"))
            except Exception:  # noqa: BLE001 - the session closed while registering
                continue
            await self.until_gone(s, self.closing)

    async def single_candidate(self, i, combo):
        while not self.closing.is_set():
            s = await self.session(i, combo)
            if s is None:
                return
            for attempt in itertools.count():
                if self.closing.is_set() or not s.is_attached():
                    break
                label = self.label("single", i, s) + f"#{attempt}"

                async def serve(call_id, label=label, node=i):
                    inv = fc.Invocation(call_id, SINGLE, label, node, self.now())
                    self.invocations.append(inv)
                    await asyncio.sleep(random.uniform(0.005, 0.04))
                    inv.ended_at = self.now()
                    return [call_id, node]

                try:
                    await s.register(serve, SINGLE, options=RegisterOptions(invoke="single"))
                except ApplicationError as e:
                    # a standby retries until the owner is gone; a node cut off from the majority
                    # refuses (junction.error.cluster_unavailable): a real client retries too
                    self.register_refusals[e.error] += 1
                    await asyncio.sleep(REGISTER_RETRY)
                    continue
                except Exception:  # noqa: BLE001 - the session closed while registering
                    break
                self.single_owner = i
                await self.until_gone(s, self.closing)
                break

    async def caller(self, i, combo, proc, period):
        while not self.stopping.is_set():
            s = await self.session(i, combo)
            if s is None:
                return
            label = self.label("caller", i, s)
            while not self.stopping.is_set() and s.is_attached():
                self.call_tasks.append(asyncio.ensure_future(self.one_call(s, label, i, proc)))
                await asyncio.sleep(period)  # pacing of the load

    async def one_call(self, s, label, i, proc):
        c = fc.Call(self.uid("c"), proc, label, i, self.now())
        self.calls.append(c)
        try:
            fut = s.call(proc, c.call_id)
        except Exception:  # noqa: BLE001 - the session closed just now: not issued
            self.calls.remove(c)
            return
        req = s._request_id_gen._next  # the CALL's request id (Autobahn numbers them in order)
        try:
            res = await fut
            c.outcome, c.result_call_id = "result", res[0]
        except ApplicationError as e:
            # an ERROR from the router, or Autobahn failing the call locally
            # with the close reason when the router closed the session under it
            c.outcome = "error" if s.answers[req] else "session_lost"
            c.error = e.error
        except asyncio.CancelledError:
            pass  # never answered (cancelled after the grace period)
        except Exception:  # noqa: BLE001 - the caller's session ended under the call
            c.outcome = "session_lost"
        finally:
            c.wire_answers = s.answers[req]
            c.answered_at = s.first_answer.get(req, self.now() if c.outcome else None)

    async def publisher(self, i, combo):
        while not self.stopping.is_set():
            s = await self.session(i, combo)
            if s is None:
                return
            label = self.label("publisher", i, s)
            while not self.stopping.is_set() and s.is_attached():
                p = fc.Publication(self.uid("p"), label, i, self.now())
                self.publications.append(p)
                try:
                    await asyncio.wait_for(s.publish(TOPIC, p.pub_id, options=PublishOptions(acknowledge=True)),
                                           ANSWER_GRACE)
                    p.acked_at = self.now()
                except Exception:  # noqa: BLE001 - an ERROR, the session lost, or no answer
                    pass
                await asyncio.sleep(PUBLISH_PERIOD)  # pacing of the load

    async def subscriber(self, i, combo):
        while not self.closing.is_set():
            s = await self.session(i, combo)
            if s is None:
                return
            sub = None

            def on_event(pub_id):
                if sub is not None:
                    sub.received[pub_id] = sub.received.get(pub_id, 0) + 1

            try:
                await s.subscribe(on_event, TOPIC)
            except Exception:  # noqa: BLE001 - the session closed while subscribing
                continue
            sub = fc.Subscription(self.label("subscriber", i, s), i, self.now())
            self.subscriptions.append(sub)
            await self.until_gone(s, self.closing)
            if not self.closing.is_set():
                sub.gone_at = self.now()

    async def testator(self, i, combo):
        while not self.closing.is_set():
            s = await self.session(i, combo)
            if s is None:
                return
            t = fc.Testament(self.uid("t"), self.label("testator", i, s), i, 0.0)
            try:
                await asyncio.wait_for(s.call("wamp.session.add_testament", TESTAMENTS, [t.testament_id], {}),
                                       CONNECT_TIMEOUT * 3)
            except Exception:  # noqa: BLE001 - the session closed meanwhile: no testament
                continue
            t.added_at = self.now()
            self.testaments.append(t)
            self.testament_by_id[t.testament_id] = t
            self.live_testaments.setdefault(i, []).append(t)
            await self.until_gone(s, self.closing)
            if t in self.live_testaments.get(i, []):
                self.live_testaments[i].remove(t)

    async def observer(self, i, combo):
        while not self.closing.is_set():
            s = await self.session(i, combo)
            if s is None:
                return

            def on_testament(tid, details=None):
                t = self.testament_by_id.get(tid)
                if self.observing and t is not None:
                    t.fired.add(details.publication)  # observers on several nodes: one publication id

            try:
                await s.subscribe(on_testament, TESTAMENTS, options=SubscribeOptions(details_arg="details"))
            except Exception:  # noqa: BLE001 - the session closed while subscribing
                continue
            await self.until_gone(s, self.closing)

    # --- the cluster ----------------------------------------------------
    async def healed(self):
        """Every member up from the leader's view and every node caught up."""
        async def probe():
            lead = await self.cluster.leader(timeout=HEAL_TIMEOUT)
            return all(m.up for m in lead.members.values()) and len(lead.members) == len(NODES)

        await wait_until(probe, HEAL_TIMEOUT, "every member up", interval=0.2)
        await self.cluster.sync(timeout=HEAL_TIMEOUT)
        for i in NODES:
            await wait_until(lambda i=i: asyncio.to_thread(readyz, self.cluster[i]), READY_TIMEOUT,
                             f"/readyz of node {i}", interval=0.1)

    async def declared_down(self, i, ids):
        lead = await self.cluster.leader(ids=ids, timeout=HEAL_TIMEOUT)
        return not lead.members[i].up

    async def up(self, i, ids):
        lead = await self.cluster.leader(ids=ids, timeout=HEAL_TIMEOUT)
        return lead.members[i].up

    def target(self, k):
        return self.single_owner or NODES[k % len(NODES)]

    async def kill(self, i, k):
        node = self.cluster[i]
        f = fc.Fault("kill", i, self.now())
        self.faults.append(f)
        for t in self.live_testaments.get(i, []):
            t.killed_at = f.start
        node.sigkill()
        await asyncio.to_thread(node.proc.wait)
        # restart it only once the survivors declared it down: a node restarted
        # while the leader's lease on its previous incarnation runs out can be
        # declared down in its new incarnation and stay so (seen once: the
        # restarted node never learnt it and never announced itself again)
        survivors = [j for j in NODES if j != i]
        await wait_until(lambda: self.declared_down(i, survivors), HEAL_TIMEOUT,
                         f"node {i} declared down by {survivors}", interval=0.1)
        await asyncio.sleep(DOWN_FOR)  # the nemesis's schedule
        await self.restart(i, f"kill{k}")
        await self.rejoin(i, f)
        await self.healed()
        f.end = self.now() + SETTLE

    async def restart(self, i, tag):
        log = self.cluster[i].log_path
        log.rename(log.with_name(f"node{i}.before-{tag}.stderr.log"))  # the restart truncates it
        peers = [self.cluster.grpc[j] for j in sorted(self.cluster.grpc) if j != i]
        await asyncio.to_thread(self.cluster._start_node, i, peers)

    async def rejoin(self, i, f):
        """Waits until the leader has node i up again. A node that stays declared
        down (REJOIN_DEADLINE) is recorded in `stuck` and restarted once more
        (kill -9, same data dir): the router's rejoin race (see the module doc)
        would otherwise keep it down for the rest of the run."""
        for attempt in itertools.count(1):
            others = [j for j in NODES if j != i]
            try:
                await wait_until(lambda: self.up(i, others), REJOIN_DEADLINE, f"node {i} up again", interval=0.1)
                return
            except AssertionError:
                if attempt == 3:
                    raise
            self.stuck.append(f"{f.kind} node {i} at +{f.start - self.t0:.1f}s: still declared down "
                              f"{REJOIN_DEADLINE:.0f}s later; statuses:\n{await self.status_texts()}")
            node = self.cluster[i]
            node.sigkill()
            await asyncio.to_thread(node.proc.wait)
            await self.restart(i, f"stuck{len(self.stuck)}")

    async def stop(self, i):
        node = self.cluster[i]
        f = fc.Fault("stop", i, self.now())
        self.faults.append(f)
        for t in self.live_testaments.get(i, []):
            t.stopped_at = f.start
        self.stopped_pid = node.proc.pid
        os.kill(node.proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(STOP_FOR)  # the nemesis's schedule: frozen past the lease
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
            self.stopped_pid = None
        await self.rejoin(i, f)
        await self.healed()
        f.end = self.now() + SETTLE

    async def partition(self, i):
        """Cuts node i off from the other two (its cluster link down; its clients
        still reach it), keeps it cut off until the majority declared it down and
        PARTITION_HOLD more, then heals the cut. Cut off while leading, it must
        lose the leadership to the majority."""
        f = fc.Fault("partition", i, self.now())
        self.faults.append(f)
        for t in self.live_testaments.get(i, []):
            t.partitioned_at = f.start
        survivors = [j for j in NODES if j != i]
        was_leader = (await self.cluster.leader(timeout=HEAL_TIMEOUT)).node_id == i
        self.lab.isolate(i)
        try:
            await wait_until(lambda: self.declared_down(i, survivors), HEAL_TIMEOUT,
                             f"node {i} declared down by {survivors}", interval=0.1)
            down = self.now()
            await asyncio.sleep(PARTITION_HOLD)  # the nemesis's schedule
        finally:
            self.lab.heal(i)
        self.note = (f"{'the leader' if was_leader else 'a follower'}, declared down at +{down - self.t0:.1f}s, "
                     f"link up again at +{self.now() - self.t0:.1f}s, `single` last registered on node "
                     f"{self.single_owner} by then")
        await self.rejoin(i, f)
        await self.healed()
        f.end = self.now() + SETTLE

    async def probe(self, kind, phase, i):
        """A call attempted on node i while the cluster restarts, with a raw
        client (it sees the transport close even before the WAMP handshake,
        where Autobahn's session reports nothing): it must be refused (connection
        refused or closed, ABORT) or answered (RESULT, ERROR, GOODBYE), never hang."""
        t0 = self.now()
        node = self.cluster.nodes[i]
        combo = ALL_COMBOS[i % len(ALL_COMBOS)]
        client = None
        step = "connect"
        try:
            if combo.transport == "websocket":
                host, port = node.ws_addr
                client = await wampraw.RawWebSocketClient.connect(node.ws_url, host, port, combo.serializer,
                                                                  timeout=PROBE_TIMEOUT)
            else:
                host, port = node.rs_addr
                client = await wampraw.RawSocketClient.connect(host, port, combo.serializer, timeout=PROBE_TIMEOUT)
            step = "HELLO"
            await client.send([wampraw.HELLO, "realm1", {"roles": wampraw.CLIENT_ROLES}])
            reply = await client.recv(PROBE_TIMEOUT)
            if reply[0] != wampraw.WELCOME:
                outcome = f"refused ({reply[0]} {reply[2:3]})"
            else:
                step = "CALL"
                reply = await client.request([wampraw.CALL, client.request_id(), {}, PROC, [self.uid("probe")]],
                                             timeout=PROBE_TIMEOUT)
                if reply[0] == wampraw.RESULT:
                    outcome = "result"
                elif reply[0] == wampraw.ERROR:
                    outcome = f"error ({reply[4]})"
                else:
                    outcome = f"session closed ({reply[0]} {reply[2:3]})"
        except asyncio.TimeoutError:
            outcome = f"silence: {step} neither answered nor refused"
        except (wampraw.ConnectionClosed, ConnectionError, OSError, asyncio.IncompleteReadError) as e:
            outcome = f"refused at {step} ({type(e).__name__})"
        finally:
            if client is not None:
                client.abort()
        self.outage_probes.append((kind, phase, i, outcome, round(self.now() - t0, 2)))

    async def restart_all(self, kind, k):
        """Whole-cluster restart: every node SIGTERMed at once (graceful drain)
        or kill -9ed at once; calls attempted meanwhile are probes; then every
        node is started again at once on its data dir and ports."""
        f = fc.Fault(kind, 0, self.now())
        self.faults.append(f)
        for ts in self.live_testaments.values():
            for t in ts:
                t.outage_at = f.start
        nodes = dict(self.cluster.nodes)
        probes = []
        if kind == "restart-kill":
            for node in nodes.values():
                node.sigkill()
        else:
            for node in nodes.values():
                node.killed = True  # the workload's clients stop reconnecting to it
                node.proc.send_signal(signal.SIGTERM)
            probes = [asyncio.ensure_future(self.probe(kind, "draining", i)) for i in NODES]
        for i, node in nodes.items():
            try:
                await asyncio.to_thread(node.proc.wait, TERM_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.shutdown_issues.append(f"{kind} at +{f.start - self.t0:.1f}s: node {i} still running "
                                            f"{TERM_TIMEOUT:.0f}s after SIGTERM (killed)")
                node.proc.kill()
                await asyncio.to_thread(node.proc.wait)
            else:
                if kind == "restart-term" and node.proc.returncode != 0:
                    self.shutdown_issues.append(f"{kind} at +{f.start - self.t0:.1f}s: node {i} exited "
                                                f"{node.proc.returncode} after SIGTERM")
            node._log.close()
        await asyncio.gather(*probes)
        await asyncio.gather(*(self.probe(kind, "down", i) for i in NODES))
        await asyncio.sleep(DOWN_FOR)  # the nemesis's schedule
        await asyncio.gather(*(self.restart(i, f"{kind}{k}") for i in NODES))
        await self.healed()
        f.end = self.now() + SETTLE

    def schedule(self):
        """The nemesis's fault kinds: every kind once per round, in an order drawn
        from the seed."""
        while True:
            yield from self.rng.sample(self.kinds, len(self.kinds))

    async def nemesis(self, deadline):
        kinds = self.schedule()
        for k in itertools.count():
            done = {f.kind for f in self.faults}
            if self.now() + QUIET >= deadline and done >= set(self.kinds):
                return  # past the deadline once every kind ran
            await asyncio.sleep(QUIET)  # the nemesis's schedule
            kind = next(kinds)
            i = 0 if kind.startswith("restart") else self.target(k)
            if kind == "partition" and sum(f.kind == "partition" for f in self.faults) % 2 == 1:
                try:
                    i = (await self.cluster.leader(timeout=HEAL_TIMEOUT)).node_id  # every other partition
                except AssertionError:
                    pass  # no agreed leader: the `single` owner then
            t0 = self.now()
            self.note = ""
            where = "every node" if i == 0 else f"node {i}"
            try:
                if kind == "kill":
                    await self.kill(i, k)
                elif kind == "stop":
                    await self.stop(i)
                elif kind == "partition":
                    await self.partition(i)
                else:
                    await self.restart_all(kind, k)
            except (AssertionError, RouterError) as e:  # the cluster did not heal: the fault lasts to the end
                self.nemesis_log.append(f"{kind} {where} at +{t0 - self.t0:.1f}s never "
                                        f"healed: {e}; statuses:\n{await self.status_texts()}")
                return
            f = self.faults[-1]
            self.nemesis_log.append(f"{f.kind} {where} at +{t0 - self.t0:.1f}s, healed after "
                                    f"{f.end - SETTLE - t0:.1f}s" + (f" ({self.note})" if self.note else ""))

    async def status_texts(self):
        out = []
        for i in NODES:
            try:
                out.append((await self.cluster.status(i)).text)
            except Exception as e:  # noqa: BLE001 - for the report only
                out.append(f"node {i}: {e!r}")
        return "\n".join(out)

    # --- the run ---------------------------------------------------------
    async def run(self):
        self.t0 = self.now()
        await self.healed()
        combos = itertools.cycle(ALL_COMBOS)
        for i in NODES:
            self.tasks += [asyncio.ensure_future(self.callee(i, next(combos))),
                           asyncio.ensure_future(self.subscriber(i, next(combos))),
                           asyncio.ensure_future(self.observer(i, next(combos))),
                           asyncio.ensure_future(self.testator(i, next(combos)))]
        # the `single` owner starts on node 2; the standbys after it
        self.tasks.append(asyncio.ensure_future(self.single_candidate(2, next(combos))))
        await wait_until(self.single_owned, 20, "the single registration")
        for i in (1, 3):
            self.tasks.append(asyncio.ensure_future(self.single_candidate(i, next(combos))))
        await self.cluster.sync()
        for i in NODES:
            self.tasks += [asyncio.ensure_future(self.caller(i, next(combos), PROC, CALL_PERIOD)),
                           asyncio.ensure_future(self.caller(i, next(combos), SINGLE, SINGLE_PERIOD)),
                           asyncio.ensure_future(self.publisher(i, next(combos)))]
        await self.nemesis(self.now() + DURATION)
        await asyncio.sleep(TAIL)  # the quiet tail: load without faults
        self.stopping.set()
        if self.call_tasks:
            await asyncio.wait(self.call_tasks, timeout=ANSWER_GRACE)
        for t in self.call_tasks:
            t.cancel()  # never answered
        await asyncio.gather(*self.call_tasks, return_exceptions=True)
        await asyncio.sleep(EVENT_GRACE)  # the last PUBLISHED's events are due by now
        self.end = self.now()
        self.observing = False
        self.closing.set()
        for s in self.sessions:
            if s.is_attached():
                s.leave()
        done, pending = await asyncio.wait(self.tasks, timeout=15)
        for t in pending:
            t.cancel()
        self.task_errors = [f"{t.exception()!r} {getattr(t.exception(), 'error', '')}"
                            for t in done if not t.cancelled() and t.exception()]

    async def single_owned(self):
        return self.single_owner is not None

    # --- results ---------------------------------------------------------
    def dump(self, path):
        """The recorded histories, for a look after the run (times from the start)."""
        def rel(obj):
            d = dataclasses.asdict(obj)
            for k, v in d.items():
                if k.endswith("_at") or k in ("start", "end"):
                    d[k] = None if v is None else round(v - self.t0, 4)
                elif isinstance(v, set):
                    d[k] = sorted(v)
            return d

        path.write_text(json.dumps({
            "faults": [rel(f) for f in self.faults], "calls": [rel(c) for c in self.calls],
            "invocations": [rel(i) for i in self.invocations],
            "publications": [rel(p) for p in self.publications],
            "subscriptions": [rel(s) for s in self.subscriptions],
            "testaments": [rel(t) for t in self.testaments], "end": round(self.end - self.t0, 4),
        }, indent=0))

    def rows(self):
        return fc.summary_rows(self.calls, self.invocations, self.publications, self.subscriptions,
                               self.testaments, self.faults, EVENT_GRACE, self.end, LEASE, SINGLE) + [
            ("late executions on a node resuming from SIGSTOP / elsewhere",
             f"{len(late(self, True))} / {len(late(self, False))}"),
            ("`single` overlaps beyond the lease in a SIGSTOP / a partition / otherwise",
             " / ".join(str(len(single_overlaps(self, k))) for k in ("stop", "partition", None))),
            ("events lost by subscribers that subscribed during a whole-cluster restart / otherwise",
             f"{len(lost_events(self, True))} / {len(lost_events(self, False))}"),
            ("calls never answered issued during a SIGSTOP / otherwise",
             f"{len(unanswered(self, True))} / {len(unanswered(self, False))}"),
            ("nodes stuck declared down after a restart / SIGCONT (restarted again)", len(self.stuck)),
            ("`single` REGISTER errors by URI",
             ", ".join(f"{k}={v}" for k, v in sorted(self.register_refusals.items())) or "none"),
            ("faults by kind", ", ".join(f"{k}={v}" for k, v in
                                         collections.Counter(f.kind for f in self.faults).items())),
            ("services not restored after a fault (fault, procedure)",
             len(fc.unrestored(self.calls, self.faults, (PROC, SINGLE), self.end))),
            ("nodes without events after a fault (fault, node)",
             len(fc.unrestored_events(self.publications, self.subscriptions, self.faults, NODES, self.end))),
            ("calls issued during whole-cluster restarts: result / router error / session lost / never answered",
             " / ".join(str(sum(1 for c in self.calls if c.outcome == o and during_restart(self, c.issued_at)))
                        for o in ("result", "error", "session_lost", None))),
            ("calls tried during whole-cluster restarts: refused or answered / silent",
             f"{sum(1 for p in self.outage_probes if not p[3].startswith('silence'))} / "
             f"{sum(1 for p in self.outage_probes if p[3].startswith('silence'))}"),
            ("SIGTERMed nodes hanging or exiting non-zero", len(self.shutdown_issues))]


@pytest.fixture(scope="module")
def history():
    """Starts the cluster (in network namespaces when this process can create
    them: NetLab), runs the workload and the nemesis once, writes the summary;
    the tests check the recorded history. The namespaces are removed at the end,
    also when the run failed."""
    print(f"\nfault suite seed: {SEED} (JUNCTION_FAULT_SEED={SEED} repeats the nemesis's choices)")
    no_netns = netns_unavailable_reason()
    lab = None if no_netns is not None else NetLab(len(NODES)).setup()
    log_dir = None
    try:
        def node_extra(i):
            admin = "127.0.0.1:0" if lab is None else f"{lab.client_ip(i)}:{ADMIN_PORT}"
            return f'data_dir = "{log_dir / f"node{i}-data"}"\n[admin]\nlisten = "{admin}"\n'

        cluster = Cluster("test_cluster_faults", n=len(NODES), lease_ms=LEASE_MS, lab=lab,
                          client_ports=(0, 0) if lab is None else (WS_PORT, RS_PORT), node_extra=node_extra)
        log_dir = cluster.log_dir
        for i in NODES:
            shutil.rmtree(log_dir / f"node{i}-data", ignore_errors=True)
        for old in log_dir.glob("node*.before-*.stderr.log"):
            old.unlink()
        started = time.monotonic()
        run = None
        try:
            cluster.start()

            async def main():
                nonlocal run
                run = Run(cluster, lab)
                await run.run()

            asyncio.run(main())
        finally:
            for node in cluster.nodes.values():
                if node.alive():
                    os.kill(node.proc.pid, signal.SIGCONT)  # in case the run failed during a SIGSTOP
            crashed = cluster.stop()
    finally:
        cleanup_errors = lab.cleanup() if lab is not None else []
    assert not crashed, f"nodes died that the nemesis did not kill: {crashed}; logs:\n{cluster.logs()}"
    assert not cleanup_errors, f"removing the namespaces/links failed: {cleanup_errors}"
    table = fc.markdown_table(run.rows())
    where = ("nodes in network namespaces" if lab is not None
             else f"nodes on 127.0.0.1, no partitions (no network namespaces here: {no_netns})")
    text = (f"# Cluster fault suite\n\n{DURATION:.0f} s of faults, {time.monotonic() - started:.0f} s in all, "
            f"lease {LEASE_MS} ms, seed {SEED}, {where}.\n\nNemesis:\n\n"
            + "\n".join(f"- {e}" for e in run.nemesis_log)
            + f"\n\n{table}\n"
            + "".join(f"\nStuck node:\n\n```\n{e}\n```\n" for e in run.stuck)
            + "".join(f"\nShutdown: {e}\n" for e in run.shutdown_issues)
            + "\nCalls tried during whole-cluster restarts:\n\n"
            + "\n".join(f"- {kind} ({phase}) node {i}: {outcome} after {took} s"
                         for kind, phase, i, outcome, took in run.outage_probes) + "\n")
    (log_dir / "summary.md").write_text(text)
    run.dump(log_dir / "history.json")
    print("\n" + text)
    run.cluster_logs = cluster.logs()
    return run


def during_restart(history, t):
    return any(f.kind.startswith("restart") and f.start <= t <= (f.end or history.end) for f in history.faults)


def show(items, n=5):
    return f"{len(items)}, e.g. {items[:n]}"


def test_the_nemesis_ran_and_the_load_flowed(history):
    assert not history.task_errors, f"workload clients failed: {history.task_errors}"
    kinds = collections.Counter(f.kind for f in history.faults)
    assert all(kinds[k] >= 1 for k in history.kinds), history.nemesis_log
    assert all(f.end is not None for f in history.faults), "\n".join(history.nemesis_log)
    results = [c for c in history.calls if c.outcome == "result"]
    assert len(results) > 200, fc.markdown_table(history.rows())
    assert {i.node for i in history.invocations if i.proc == PROC} == set(NODES)
    assert fc.owed_events(history.publications, history.subscriptions, history.faults, EVENT_GRACE, history.end)
    assert any(t.killed_at is not None for t in history.testaments), "no testator's node was killed"
    single = [i for i in history.invocations if i.proc == SINGLE]
    assert len(fc.tenures(single)) >= 2, "the `single` registration was never taken over"


def test_every_restarted_or_resumed_node_rejoins(history):
    assert not history.stuck, "\n\n".join(history.stuck)


def test_a_partition_ran_in_network_namespaces(history):
    if history.lab is None:
        pytest.skip(f"no network namespaces here ({netns_unavailable_reason()}): the nemesis made no partition")
    assert any(f.kind == "partition" for f in history.faults), history.nemesis_log


def test_every_procedure_serves_again_after_every_fault(history):
    """Clients re-register on reconnect (after a whole-cluster restart: every
    callee), and the healed cluster routes calls to them again."""
    missing = [(fc.fault_label(f), f"+{f.start - history.t0:.1f}s", proc)
               for f, proc in fc.unrestored(history.calls, history.faults, (PROC, SINGLE), history.end)]
    assert not missing, f"procedures that served no call between a healed fault and the next one: {missing}"


def test_every_node_delivers_events_again_after_every_fault(history):
    """Subscribers subscribe again on reconnect (after a whole-cluster restart:
    all of them), and events reach them on every node."""
    missing = [(fc.fault_label(f), f"+{f.start - history.t0:.1f}s", f"node {node}")
               for f, node in fc.unrestored_events(history.publications, history.subscriptions, history.faults,
                                                   NODES, history.end)]
    assert not missing, f"nodes whose subscribers got no event between a healed fault and the next one: {missing}"


def test_calls_tried_during_a_whole_cluster_restart_fail_instead_of_hanging(history):
    assert any(p[0].startswith("restart") for p in history.outage_probes), history.nemesis_log
    silent = [p for p in history.outage_probes if p[3].startswith("silence")]
    assert not silent, f"calls tried while the cluster restarted got no answer and no error: {silent}"


def test_sigtermed_nodes_shut_down_in_time_and_cleanly(history):
    assert not history.shutdown_issues, "\n".join(history.shutdown_issues)


def test_no_call_answered_twice(history):
    twice = fc.answered_twice(history.calls)
    assert not twice, f"calls answered twice: {show(twice)}"


def unanswered(history, during_stop):
    """Calls never answered, split by whether they were issued while a node was
    SIGSTOPped (within a stop's fault window)."""
    return [c for c in fc.never_answered(history.calls)
            if any(f.kind == "stop" and f.start <= c.issued_at <= (f.end or history.end) for f in history.faults)
            == during_stop]


def describe_unanswered(history, calls):
    return [(c.call_id, c.proc, c.caller, f"issued +{c.issued_at - history.t0:.2f}s") for c in calls]


def test_every_call_answered(history):
    """Except calls issued while a node was SIGSTOPped (the next test)."""
    never = unanswered(history, during_stop=False)
    assert not never, (f"calls never answered ({ANSWER_GRACE} s after the load stopped): "
                       f"{show(describe_unanswered(history, never))}")


def test_every_call_issued_during_a_sigstop_answered(history):
    never = unanswered(history, during_stop=True)
    assert not never, (f"calls issued during a SIGSTOP never answered ({ANSWER_GRACE} s after the load "
                       f"stopped): {show(describe_unanswered(history, never))}")


def late(history, on_resumed):
    """Late executions, split by whether the callee's node was a SIGSTOPped one
    resuming (the invocation started within that stop's fault window)."""
    return [(c, inv) for c, inv in fc.late_executions(history.calls, history.invocations)
            if (fc.fault_at(inv.node, inv.started_at, history.faults, history.end, "stop") is not None)
            == on_resumed]


def describe_late(history, pairs):
    return [(c.call_id, c.error, f"error at +{c.answered_at - history.t0:.2f}s",
             f"started on node {inv.node} at +{inv.started_at - history.t0:.2f}s") for c, inv in pairs]


def test_no_invocation_starts_after_its_caller_got_an_error(history):
    """Except on a node resuming from SIGSTOP (the next test)."""
    pairs = late(history, on_resumed=False)
    assert not pairs, f"invocations started after their caller's ERROR: {show(describe_late(history, pairs))}"


def test_a_resumed_node_starts_no_invocation_whose_caller_got_an_error(history):
    pairs = late(history, on_resumed=True)
    assert not pairs, (f"invocations started on a resumed node after their caller's ERROR: "
                       f"{show(describe_late(history, pairs))}")


def lost_events(history, subscribed_during_restart):
    """Events lost by live subscribers, split by whether the subscription was
    made while the whole cluster restarted (within a restart's fault window)."""
    return [(s, p) for s, p in fc.lost_events(history.publications, history.subscriptions, history.faults,
                                              EVENT_GRACE, history.end)
            if during_restart(history, s.subscribed_at) == subscribed_during_restart]


def describe_lost(history, lost):
    return [(s.label, f"subscribed +{s.subscribed_at - history.t0:.2f}s", p.pub_id, f"published on node {p.node}",
             f"sent +{p.sent_at - history.t0:.2f}s") for s, p in lost]


def test_no_event_lost_by_a_live_subscriber(history):
    """Except subscribers that subscribed while the whole cluster restarted (the next test)."""
    lost = lost_events(history, False)
    assert not lost, f"events owed but never received: {show(describe_lost(history, lost))}; " \
                     f"faults {history.nemesis_log}"


def test_no_event_lost_by_a_subscriber_that_subscribed_during_a_whole_cluster_restart(history):
    lost = lost_events(history, True)
    assert not lost, f"events owed but never received: {show(describe_lost(history, lost))}; " \
                     f"faults {history.nemesis_log}"


def single_overlaps(history, cause):
    """`single` tenures overlapping beyond the lease, split by the fault they
    overlapped in: "stop" / "partition" when a SIGSTOP / a partition of one of
    the two callees' nodes covers part of the overlap, else None."""
    single = [i for i in history.invocations if i.proc == SINGLE]
    ten = fc.tenures(single)
    node = {i.callee: i.node for i in single}
    out = []
    for a, b, overlap in fc.single_overlaps(single, LEASE):
        t0, t1 = max(ten[a][0], ten[b][0]), min(ten[a][1], ten[b][1])
        found = None
        for kind in ("stop", "partition"):
            if any(f.kind == kind and f.node in (node[a], node[b]) and f.start <= t1
                   and t0 <= (f.end if f.end is not None else history.end) for f in history.faults):
                found = kind
                break
        if found == cause:
            out.append((a, b, f"{overlap:.2f}s from +{t0 - history.t0:.2f}s to +{t1 - history.t0:.2f}s"))
    return out


def test_single_callees_never_both_serve_beyond_the_lease(history):
    """Except while one of their nodes was SIGSTOPped or cut off (the next tests)."""
    overlaps = single_overlaps(history, None)
    assert not overlaps, f"`single` callees serving at the same time beyond the lease: {overlaps}"


def test_a_resumed_single_owner_does_not_serve_beside_its_successor(history):
    overlaps = single_overlaps(history, "stop")
    assert not overlaps, f"`single` callees serving at the same time beyond the lease: {overlaps}"


def test_a_cut_off_single_owner_does_not_serve_beside_its_successor(history):
    overlaps = single_overlaps(history, "partition")
    assert not overlaps, f"`single` callees serving at the same time beyond the lease: {overlaps}"


def test_testament_of_a_killed_session_fires(history):
    _, never = fc.bad_testaments(history.testaments)
    assert not never, f"testaments never fired although their node was killed: {show(never)}"


def test_testament_of_a_session_on_a_cut_off_node_fires(history):
    """The majority declared the node down (and the node ends its sessions once
    the partition heals): its sessions' testaments are published."""
    never = [t for t in history.testaments if t.partitioned_at is not None and not t.fired]
    assert not never, f"testaments of a cut-off node's sessions never fired: {show(never)}"


def test_no_testament_fires_twice(history):
    """Except for sessions of a SIGSTOPped node (the next test)."""
    twice, _ = fc.bad_testaments(history.testaments)
    twice = [t for t in twice if t.stopped_at is None or t.killed_at is not None]
    assert not twice, f"testaments fired more than once: {show(twice)}"


def test_no_testament_of_a_sigstopped_node_fires_twice(history):
    twice, _ = fc.bad_testaments(history.testaments)
    twice = [t for t in twice if t.stopped_at is not None and t.killed_at is None]
    assert not twice, f"testaments fired more than once: {show(twice)}"
