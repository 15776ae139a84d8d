# Helpers for the multi-node tests (tests/python/test_cluster_*.py).
#
# - `Cluster`: real `junction` processes forming one Raft cluster. Node 1
#   bootstraps; the others join through it (started in parallel once node 1 is
#   ready). Every node listens for clients on port 0 (the addresses are read
#   from its stdout, through conftest's `Router`) and for gRPC on a concrete
#   port picked free by the test. Each node's stderr goes to
#   target/test-logs/cluster/<test>/node<N>.stderr.log.
# - `start_cluster` / `module_cluster`: a started cluster; module_cluster is the
#   generator for a module-scoped fixture (3 nodes, stopped at the end, failing
#   the module when a node died that the tests did not kill).
# - `cluster.status(i)`: runs `junction cluster status --node ADDR` and parses
#   it (`Status`); `wait_status` / `wait_until` poll instead of sleeping.
# - `cluster.sync()`: a barrier on the replicated routing table. A node answers
#   SUBSCRIBE/REGISTER once the entry is applied on *itself*; the other nodes
#   apply it within the replication lag. sync() takes the leader's commit
#   index and waits until every live node has applied at least that far.
# - `NetLab`: network namespaces for the partition test (one per node, a
#   "cluster" bridge carrying gRPC that can be cut per node, and a separate
#   "client" bridge the test's clients use from the host). A cluster in
#   namespaces listens on non-loopback addresses, so it gets a cluster secret
#   (junction refuses a reachable cluster port without one) unless the test's
#   `extra` brings its own secret or TLS.
# - Every node keeps its Raft state in `Cluster.data_dir(i)` (a temporary
#   directory per cluster, removed by stop()): a restarted node comes back with
#   its log, as a voter must (an empty voter is refused until removed).
import asyncio
import concurrent.futures
import itertools
import os
import queue
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO_ROOT, Router, RouterError, junction_bin

LOG_ROOT = REPO_ROOT / "target" / "test-logs" / "cluster"
STATUS_TIMEOUT = 8.0


def free_ports(n, host="127.0.0.1"):
    """n distinct TCP ports that were free a moment ago on `host`."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def log_dir_for(name):
    d = LOG_ROOT / re.sub(r"[^0-9A-Za-z_.-]+", "_", name).strip("_")
    d.mkdir(parents=True, exist_ok=True)
    return d


# --------------------------------------------------------------------------
# nodes
# --------------------------------------------------------------------------


class Node(Router):
    """A `junction --config FILE` process, optionally run inside a network
    namespace (`ip netns exec NS junction ...`, which execs, so `proc` is the
    router itself and SIGKILL reaches it)."""

    def __init__(self, node_id, grpc_addr, config_path, log_path, netns=None):
        self.node_id = node_id
        self.grpc_addr = grpc_addr
        self.netns = netns
        self.killed = False
        self.config_path = Path(config_path)
        self.args = ["--config", str(config_path)]
        self.log_path = Path(log_path)
        self.listeners = {}
        self.stdout_lines = []
        self._lines = queue.Queue()
        binary = junction_bin()
        if not binary.exists():
            raise RouterError(f"router binary {binary} does not exist (run cargo build --bins)")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*self.prefix(), str(binary), *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=str(REPO_ROOT),
        )
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop(timeout=3)
            raise

    def prefix(self):
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def sigkill(self):
        """kill -9 the node (returns at once; the process is reaped later)."""
        self.killed = True
        self.proc.kill()

    def __repr__(self):
        return f"<node {self.node_id} grpc={self.grpc_addr} pid={self.proc.pid} log={self.log_path}>"


def node_config(node_id, grpc_addr, peers, bootstrap, voters=3, lease_ms=2000, client_host="127.0.0.1",
                extra="", data_dir=None, client_ports=(0, 0)):
    """A node's TOML. A cluster node needs a data directory: `data_dir`, or one
    set in `extra`; without either the node runs in memory (`ephemeral = true`)."""
    peers_toml = ", ".join(f'"{p}"' for p in peers)
    if "data_dir" in extra:
        storage = ""
    elif data_dir is not None:
        storage = f'data_dir = "{data_dir}"\n'
    else:
        storage = "ephemeral = true\n"
    return f"""\
[websocket]
listen = "{client_host}:{client_ports[0]}"
[rawsocket]
listen = "{client_host}:{client_ports[1]}"
[cluster]
node_id = {node_id}
listen = "{grpc_addr}"
peers = [{peers_toml}]
bootstrap = {"true" if bootstrap else "false"}
voters = {voters}
lease_ms = {lease_ms}
{storage}{extra}
"""


# --------------------------------------------------------------------------
# `junction cluster status`
# --------------------------------------------------------------------------


@dataclass
class Member:
    node_id: int
    addr: str
    role: str
    up: bool
    incarnation: str


@dataclass
class Status:
    node_id: int
    state: str  # leader / follower / candidate / learner ...
    leader: int | None
    term: int
    last: int | None
    committed: int | None
    applied: int | None
    members: dict = field(default_factory=dict)  # id -> Member
    links: dict = field(default_factory=dict)  # id -> state text
    text: str = ""


def _idx(s):
    return None if s == "-" else int(s)


def parse_status(text):
    lines = text.splitlines()
    st = Status(0, "", None, 0, None, None, None, text=text)
    section = None
    for line in lines:
        if line.startswith("node:"):
            m = re.match(r"node:\s+(\d+)\s+\((.*?)\)\s+(\S+)", line)
            st.node_id, st.state = int(m.group(1)), m.group(3)
        elif line.startswith("leader:"):
            m = re.match(r"leader:\s+(\d+)", line)
            st.leader = int(m.group(1)) if m else None
        elif line.startswith("term:"):
            st.term = int(line.split()[1])
        elif line.startswith("log:"):
            m = re.search(r"last (\S+)\s+committed (\S+)\s+applied (\S+)", line)
            st.last, st.committed, st.applied = (_idx(m.group(i)) for i in (1, 2, 3))
        elif line.startswith("members:"):
            section = "members"
        elif line.startswith("links:"):
            section = "links"
        elif section == "members":
            parts = line.split()
            if not parts or parts[0] == "ID":
                continue
            st.members[int(parts[0])] = Member(int(parts[0]), parts[1], parts[2], parts[3] == "yes", parts[4])
        elif section == "links":
            parts = line.split()
            if len(parts) >= 3:
                st.links[int(parts[0])] = parts[2]
    return st


class StatusError(Exception):
    pass


async def run_status(grpc_addr, prefix=(), timeout=STATUS_TIMEOUT, config=None):
    """`junction [--config FILE] cluster status --node ADDR` (the node's own config
    file supplies the cluster secret / TLS identity when the cluster has them)."""
    cfg = ["--config", str(config)] if config else []
    proc = await asyncio.create_subprocess_exec(
        *prefix, str(junction_bin()), *cfg, "cluster", "status", "--node", grpc_addr,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise StatusError(f"`cluster status --node {grpc_addr}` took more than {timeout}s")
    if proc.returncode != 0:
        raise StatusError(f"`cluster status --node {grpc_addr}` exited {proc.returncode}: "
                          f"{err.decode(errors='replace').strip()}")
    return parse_status(out.decode(errors="replace"))


async def wait_until(probe, timeout, what, interval=0.05):
    """Calls the async `probe()` until it returns something truthy (returned)
    or `timeout` seconds pass (AssertionError naming `what` and the last value
    or exception seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = await probe()
            if value:
                return value
            last = value
        except (StatusError, OSError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------
# the cluster
# --------------------------------------------------------------------------


class Cluster:
    """`n` junction nodes on 127.0.0.1 (or in namespaces, see NetLab)."""

    def __init__(self, name, n=3, voters=3, lease_ms=2000, extra="", lab=None, client_ports=(0, 0),
                 node_extra=None):
        self.name = name
        self.node_extra = node_extra  # i -> config text appended to `extra` for node i only
        self.client_ports = client_ports  # (websocket, rawsocket); 0: any (read from the node's stdout)
        self.voters = voters
        self.lease_ms = lease_ms
        if lab is not None and "secret" not in extra and "[cluster.tls]" not in extra:
            extra = f'secret = "{secrets.token_hex(16)}"\n{extra}'
        self.extra = extra
        self.lab = lab
        self.log_dir = log_dir_for(name)
        self.nodes = {}  # id -> Node
        self.grpc = {}  # id -> grpc addr (also for nodes not started yet)
        self.planned = n
        self.data_root = Path(tempfile.mkdtemp(prefix="junction-cluster-"))
        if lab is None:
            for i, port in enumerate(free_ports(n), start=1):
                self.grpc[i] = f"127.0.0.1:{port}"
        else:
            for i in range(1, n + 1):
                self.grpc[i] = lab.grpc_addr(i)

    # --- lifecycle -------------------------------------------------------
    def _start_node(self, i, peers):
        client_host = "127.0.0.1" if self.lab is None else self.lab.client_ip(i)
        cfg = node_config(i, self.grpc[i], peers, bootstrap=(i == 1), voters=self.voters,
                          lease_ms=self.lease_ms, client_host=client_host,
                          extra=self.extra + (self.node_extra(i) if self.node_extra else ""),
                          data_dir=self.data_dir(i), client_ports=self.client_ports)
        path = self.log_dir / f"node{i}.toml"
        path.write_text(cfg)
        node = Node(i, self.grpc[i], path, self.log_dir / f"node{i}.stderr.log",
                    netns=None if self.lab is None else self.lab.ns(i))
        self.nodes[i] = node
        return node

    def start(self):
        """Starts node 1 (bootstrap), then the others in parallel; returns when
        all printed `ready`."""
        ids = sorted(self.grpc)
        self._start_node(1, [self.grpc[j] for j in ids if j != 1])
        rest = [i for i in ids if i != 1]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(rest))) as ex:
            futs = [ex.submit(self._start_node, i, [self.grpc[j] for j in ids if j != i]) for i in rest]
            for f in futs:
                f.result()
        return self

    def data_dir(self, i):
        """Node i's Raft data directory."""
        return self.data_root / f"node{i}"

    def add_node(self):
        """Starts one more node that joins through the existing ones (blocking)."""
        i = max(self.grpc) + 1
        if self.lab is None:
            self.grpc[i] = f"127.0.0.1:{free_ports(1)[0]}"
        else:
            self.grpc[i] = self.lab.grpc_addr(i)
        return self._start_node(i, [self.grpc[j] for j in sorted(self.grpc) if j != i])

    def stop(self):
        """Stops every node; returns [(node, exit code)] of nodes that died
        although the test did not kill them."""
        crashed = []
        for node in list(self.nodes.values()):
            if not node.killed and not node.alive():
                crashed.append((node, node.proc.returncode))
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(self.nodes))) as ex:
            list(ex.map(lambda n: n.stop(timeout=3), self.nodes.values()))
        shutil.rmtree(self.data_root, ignore_errors=True)
        return crashed

    def __getitem__(self, i):
        return self.nodes[i]

    def live(self):
        return [i for i, n in sorted(self.nodes.items()) if n.alive() and not n.killed]

    def logs(self):
        return "\n".join(f"  node {i}: {n.log_path}" for i, n in sorted(self.nodes.items()))

    # --- status ----------------------------------------------------------
    async def status(self, i):
        prefix = self.nodes[i].prefix() if i in self.nodes else []
        config = self.nodes[i].config_path if i in self.nodes else None
        return await run_status(self.grpc[i], prefix, config=config)

    async def statuses(self, ids=None):
        ids = self.live() if ids is None else ids
        res = await asyncio.gather(*(self.status(i) for i in ids))
        return dict(zip(ids, res))

    async def wait_status(self, i, pred, timeout, what):
        async def probe():
            st = await self.status(i)
            return st if pred(st) else None

        return await wait_until(probe, timeout, f"{what} (status of node {i})")

    async def leader(self, ids=None, timeout=15.0):
        """The leader the given nodes agree on (polls until they do)."""
        ids = self.live() if ids is None else ids

        async def probe():
            sts = await self.statuses(ids)
            leaders = {st.leader for st in sts.values()}
            if len(leaders) == 1 and None not in leaders:
                lid = leaders.pop()
                if lid in ids and sts[lid].state == "leader":
                    return sts[lid]
            return None

        return await wait_until(probe, timeout, f"nodes {ids} to agree on a leader")

    async def sync(self, ids=None, timeout=10.0):
        """Waits until every given (default: live) node has applied everything
        the leader had committed when sync() was called."""
        ids = self.live() if ids is None else ids
        lead = await self.leader(ids)
        target = lead.committed or 0

        async def probe():
            sts = await self.statuses(ids)
            return all((st.applied or 0) >= target for st in sts.values()) and sts

        return await wait_until(probe, timeout, f"nodes {ids} to apply up to index {target}")


def start_cluster(name, n=3, **kw):
    c = Cluster(name, n=n, **kw)
    try:
        c.start()
    except BaseException:
        c.stop()
        raise
    return c


def module_cluster(name, n=3, **kw):
    """Generator for a module-scoped fixture: a started n-node cluster, stopped
    at the end (failing the module when a node died that the tests did not kill)."""
    c = start_cluster(name, n=n, **kw)
    yield c
    crashed = c.stop()
    if crashed:
        pytest.fail("nodes died during the module: "
                    + ", ".join(f"node {n.node_id} exit {code} (log {n.log_path})" for n, code in crashed))


# --------------------------------------------------------------------------
# network namespaces (partition test)
# --------------------------------------------------------------------------


def _ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {r.stderr.strip()}")
    return r


def netns_unavailable_reason():
    """None when this process can create network namespaces, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"jprobe{os.getpid()}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    try:
        r = _ip("link", "add", f"jpb{os.getpid()}", "type", "bridge", check=False)
        if r.returncode != 0:
            return f"cannot create a bridge: {r.stderr.strip()}"
        _ip("link", "del", f"jpb{os.getpid()}", check=False)
        r = _ip("link", "add", f"jpv{os.getpid()}", "type", "veth", "peer", "name", f"jpw{os.getpid()}",
                check=False)
        if r.returncode != 0:
            return f"cannot create a veth pair: {r.stderr.strip()}"
        _ip("link", "del", f"jpv{os.getpid()}", check=False)
    finally:
        _ip("netns", "del", probe, check=False)
    return None


class NetLab:
    """One network namespace per node, with two links each:

    - cluster net 10.77.T.0/24: veth from the namespace to bridge `jcb<tag>` on
      the host; nodes talk gRPC over it. `isolate(i)` sets the host end of node
      i's veth down (cable cut), `heal(i)` sets it up again.
    - client net 10.78.T.0/24: veth to bridge `jkb<tag>`, which has 10.78.T.254
      on the host, so the test's clients (and nothing else) reach the nodes'
      WebSocket/RawSocket listeners from the host even while a node is cut off.

    T is a /24 not used on the host yet. Names carry the process id and a
    per-process counter, so labs of parallel test processes (or two labs in one
    process) never collide. Everything is removed by `cleanup()`.
    """

    GRPC_PORT = 7000
    _seq = itertools.count()

    def __init__(self, n):
        self.tag = f"{os.getpid()}x{next(NetLab._seq)}"  # interface names: at most 15 characters (pid <= 7 digits)
        self.n = n
        self.namespaces = []
        self.links = []
        used = _ip("-o", "-4", "addr", "show").stdout
        for t in range(10 + os.getpid() % 200, 10 + os.getpid() % 200 + 240):
            t = t % 250 + 1
            if f"10.77.{t}." not in used and f"10.78.{t}." not in used:
                self.t = t
                break
        else:
            raise RuntimeError("no free 10.77.T.0/24 subnet")
        self.cbr = f"jcb{self.tag}"
        self.kbr = f"jkb{self.tag}"

    def ns(self, i):
        return f"junction-{self.tag}-n{i}"

    def cluster_ip(self, i):
        return f"10.77.{self.t}.{i}"

    def client_ip(self, i):
        return f"10.78.{self.t}.{i}"

    def grpc_addr(self, i):
        return f"{self.cluster_ip(i)}:{self.GRPC_PORT}"

    def host_cluster_veth(self, i):
        return f"jc{self.tag}h{i}"

    def setup(self):
        try:
            for br in (self.cbr, self.kbr):
                _ip("link", "add", br, "type", "bridge")
                self.links.append(br)
                _ip("link", "set", br, "up")
            _ip("addr", "add", f"10.78.{self.t}.254/24", "dev", self.kbr)
            for i in range(1, self.n + 1):
                self.add_ns(i)
        except BaseException:
            self.cleanup()
            raise
        return self

    def add_ns(self, i):
        ns = self.ns(i)
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        for kind, br, ip in (("c", self.cbr, self.cluster_ip(i)), ("k", self.kbr, self.client_ip(i))):
            host_end, ns_end = f"j{kind}{self.tag}h{i}", f"j{kind}{self.tag}n{i}"
            _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            self.links.append(host_end)
            _ip("link", "set", ns_end, "netns", ns)
            _ip("link", "set", host_end, "master", br)
            _ip("link", "set", host_end, "up")
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", ns_end)
            _ip("-n", ns, "link", "set", ns_end, "up")

    def isolate(self, i):
        _ip("link", "set", self.host_cluster_veth(i), "down")

    def heal(self, i):
        _ip("link", "set", self.host_cluster_veth(i), "up")

    def cleanup(self):
        errors = []
        for ns in self.namespaces:
            r = _ip("netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(r.stderr.strip())
        for link in reversed(self.links):
            # veth host ends vanish with their namespace end; bridges stay
            if _ip("link", "show", link, check=False).returncode == 0:
                r = _ip("link", "del", link, check=False)
                # the kernel removes a veth's host end after its namespace asynchronously:
                # one that vanished between the check and the delete is gone, as wanted
                if r.returncode != 0 and _ip("link", "show", link, check=False).returncode == 0:
                    errors.append(r.stderr.strip())
        self.namespaces, self.links = [], []
        return errors
