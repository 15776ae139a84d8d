"""Shared helpers of bench/costs.sh and bench/scaling.sh (python3 stdlib only).

Starts release nodes (optionally inside a network namespace and a cgroup v1 CPU
quota), reads a process's CPU time and RSS from /proc, scrapes the Prometheus
endpoint, runs `junction-bench` and parses its `RESULT {json}` line, and has a
minimal WAMP-over-RawSocket (JSON) client for the memory measurements
(junction-bench has no "hold N subscriptions / registrations / retained events"
scenario).
"""
import json
import os
import re
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
JUNCTION = os.environ.get("JUNCTION_BIN") or os.path.join(ROOT, "target/release/junction")
BENCH = os.path.join(ROOT, "target/release/junction-bench")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_s(pid):
    """utime + stime of a process (all its threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICK


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


class Node:
    """One junction process. `ns`: run inside `ip netns exec NS`; `cgroup`: a
    cgroup v1 cpu directory the process is moved into before it execs."""

    def __init__(self, name, config, workdir, ns=None, cgroup=None, env=None, wrap=None):
        self.name = name
        self.dir = workdir
        self.cfg = os.path.join(workdir, f"{name}.toml")
        with open(self.cfg, "w") as f:
            f.write(config)
        self.out = open(os.path.join(workdir, f"{name}.out"), "w+")
        self.err = open(os.path.join(workdir, f"{name}.err"), "w")
        cmd = (wrap or []) + [JUNCTION, "--config", self.cfg]
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        pre = None
        if cgroup:
            procs = os.path.join(cgroup, "cgroup.procs")

            def pre():  # runs in the child before exec: join the cgroup
                with open(procs, "w") as f:
                    f.write(str(os.getpid()))

        e = dict(os.environ)
        e.setdefault("RUST_LOG", "warn")
        e.update(env or {})
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=self.err, preexec_fn=pre, env=e)
        self.pid = self.proc.pid  # `ip netns exec` execs the command: same pid
        self.urls = {}
        deadline = time.time() + 30
        while time.time() < deadline:
            self.out.seek(0)
            text = self.out.read()
            if re.search(r"^ready", text, re.M):
                for kind, url in re.findall(r"^listening (\S+) (\S+)", text, re.M):
                    self.urls[kind] = url
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        else:
            text = ""
        if "websocket" not in self.urls:
            self.stop()
            raise RuntimeError(f"node {name} did not start: " + open(os.path.join(workdir, f"{name}.err")).read()[-2000:])

    @property
    def ws(self):
        return self.urls["websocket"]

    @property
    def rs(self):
        return self.urls.get("rawsocket", "").replace("tcp://", "")

    @property
    def admin(self):
        return self.urls.get("admin")

    def cpu(self):
        return cpu_s(self.pid)

    def rss(self):
        return rss_bytes(self.pid)

    def metrics(self):
        """{metric name: summed value} of the node's /metrics (labels summed)."""
        if not self.admin:
            return {}
        text = urllib.request.urlopen(self.admin + "/metrics", timeout=5).read().decode()
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if m:
                try:
                    out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
                except ValueError:
                    pass
        return out

    def link_bytes(self):
        m = self.metrics()
        return m.get("junction_link_bytes_sent_total", m.get("junction_link_bytes_sent", 0.0))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def node_config(ws="127.0.0.1:0", rs="127.0.0.1:0", admin="127.0.0.1:0", cluster=None):
    """A node's TOML. `cluster`: dict(node_id, listen, peers, bootstrap, secret)."""
    s = (
        f'[websocket]\nlisten = "{ws}"\n[rawsocket]\nlisten = "{rs}"\n'
        f'[admin]\nlisten = "{admin}"\nmetrics_public = true\n'
        "[limits]\nauth_failures_per_ip = 0\nmax_subscriptions_per_session = 100000\n"
        "max_registrations_per_session = 100000\nmax_retained_events = 1000000\n"
        "max_retained_bytes = 1073741824\nmax_sessions = 1000000\n"
    )
    if cluster:
        peers = ",".join(f'"{p}"' for p in cluster["peers"])
        s += (
            f'[cluster]\nnode_id = {cluster["node_id"]}\nlisten = "{cluster["listen"]}"\n'
            f'peers = [{peers}]\nbootstrap = {"true" if cluster["bootstrap"] else "false"}\nephemeral = true\n'
        )
        if cluster.get("secret"):
            s += f'secret = "{cluster["secret"]}"\n'
    return s


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


_GRPC_PORT = [7000]


def start_cluster(n, workdir, host=lambda i: "127.0.0.1", ns=lambda i: None, cgroup=lambda i: None, secret=None,
                  wrap=lambda i: None, lone_name="n1"):
    """n nodes, node 1 bootstraps; returns them once every node is ready and its
    links to every other node are up. n == 1: a lone node (no [cluster])."""
    if n == 1:
        return [Node(lone_name, node_config(f"{host(1)}:0", f"{host(1)}:0", f"{host(1)}:0"), workdir, ns(1), cgroup(1),
                     wrap=wrap(1))]
    _GRPC_PORT[0] += 1  # a fresh port per cluster (namespaced hosts), loopback: a free one
    grpc = {i: (f"{host(i)}:{_GRPC_PORT[0]}" if host(i) != "127.0.0.1" else f"127.0.0.1:{free_port()}") for i in range(1, n + 1)}
    nodes = []
    for i in range(1, n + 1):
        c = dict(node_id=i, listen=grpc[i], peers=[grpc[j] for j in grpc if j != i], bootstrap=(i == 1), secret=secret)
        nodes.append(Node(f"n{i}", node_config(f"{host(i)}:0", f"{host(i)}:0", f"{host(i)}:0", c), workdir, ns(i), cgroup(i),
                          wrap=wrap(i)))
    wait_links(nodes)
    return nodes


def wait_links(nodes, timeout=30):
    want = len(nodes) - 1
    deadline = time.time() + timeout
    while time.time() < deadline:
        ups = [n.metrics().get("junction_link_up", 0) for n in nodes]
        if all(u >= want for u in ups):
            time.sleep(0.5)
            return
        time.sleep(0.2)
    raise RuntimeError(f"links not up: {ups}")


def bench(args, timeout=300, env=None):
    """Runs junction-bench, returns its RESULT json."""
    p = subprocess.run([BENCH] + args + ["--quiet"], capture_output=True, text=True, timeout=timeout, env=env)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"junction-bench {' '.join(args)} failed: {p.stdout[-1500:]} {p.stderr[-1500:]}")


def bench_popen(args, prefix=None):
    cmd = (prefix or []) + [BENCH] + args + ["--quiet"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def bench_result(p, timeout=300):
    out, err = p.communicate(timeout=timeout)
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"junction-bench failed: {out[-1500:]} {err[-1500:]}")


class Window:
    """Per-node CPU seconds and link bytes between start() and stop()."""

    def __init__(self, nodes, extra_pids=()):
        self.nodes = nodes
        self.extra = list(extra_pids)

    def _snap(self):
        return (
            time.monotonic(),
            [n.cpu() for n in self.nodes],
            [n.link_bytes() if n.admin else 0.0 for n in self.nodes],
            [sum(cpu_s(p) for p in self.extra if os.path.exists(f"/proc/{p}"))],
        )

    def start(self):
        self.a = self._snap()

    def stop(self):
        self.b = self._snap()
        self.seconds = self.b[0] - self.a[0]
        self.cpu = [y - x for x, y in zip(self.a[1], self.b[1])]
        self.link = [y - x for x, y in zip(self.a[2], self.b[2])]
        self.extra_cpu = self.b[3][0] - self.a[3][0]
        return self


def measure(nodes, args, warmup=1.0, duration=4.0, margin=0.3):
    """Runs one junction-bench scenario and samples every node's CPU and link bytes
    inside the bench's measured window (from warmup+margin to the end-margin).
    Returns (result, window). Per-op figures: window.cpu[i] / window.seconds / rate."""
    if args and isinstance(args[0], list):  # several benches at once: their rates summed
        ps = [bench_popen(a + ["--warmup", str(warmup), "--duration", str(duration)]) for a in args]
    else:
        ps = [bench_popen(args + ["--warmup", str(warmup), "--duration", str(duration)])]
    # the bench connects and sets up before its warm-up; wait until its sessions show
    time.sleep(warmup + margin + 0.5)
    w = Window(nodes, [p.pid for p in ps])
    w.start()
    time.sleep(max(0.5, duration - 2 * margin - 0.5))
    w.stop()
    rs = [bench_result(p) for p in ps]
    if len(rs) == 1:
        return rs[0], w
    r = dict(rs[0])
    r["rate"] = sum(x.get("rate", 0) for x in rs)
    return r, w


# --- a minimal WAMP client: RawSocket, JSON serializer -----------------------------------

class Wamp:
    def __init__(self, hostport, realm="realm1"):
        host, port = hostport.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=60)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.sendall(bytes([0x7F, 0xF1, 0, 0]))  # max length 2^24, JSON
        hs = self._recvn(4)
        if hs[0] != 0x7F or hs[1] & 0x0F != 1:
            raise RuntimeError(f"rawsocket handshake refused: {hs!r}")
        self.buf = b""
        self.req = 0
        self.send([1, realm, {"roles": {"caller": {}, "callee": {}, "publisher": {}, "subscriber": {}}}])
        m = self.recv()
        if m[0] != 2:
            raise RuntimeError(f"no WELCOME: {m}")
        self.session = m[1]

    def _recvn(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise RuntimeError("connection closed")
            b += c
        return b

    def send(self, msg):
        data = json.dumps(msg).encode()
        self.s.sendall(struct.pack(">I", len(data)) + data)

    def recv(self):
        while True:
            h = self._recvn(4)
            n = struct.unpack(">I", bytes([0]) + h[1:])[0]
            body = self._recvn(n)
            if h[0] == 1:  # ping
                self.s.sendall(bytes([2]) + h[1:] + body)
                continue
            if h[0] == 0:
                return json.loads(body)

    def pipeline(self, msgs, ok, window=500):
        """Sends msgs (each without request id: it is inserted at index 1), at most
        `window` unanswered; every answer's type must be `ok`."""
        sent = done = 0
        while done < len(msgs):
            while sent < len(msgs) and sent - done < window:
                self.req += 1
                m = list(msgs[sent])
                m.insert(1, self.req)
                self.send(m)
                sent += 1
            a = self.recv()
            if a[0] != ok:
                raise RuntimeError(f"unexpected answer {a}")
            done += 1

    def close(self):
        try:
            self.send([6, {}, "wamp.close.normal"])
            self.recv()
        except Exception:
            pass
        self.s.close()


# --- simulated hosts: network namespaces and CPU quotas ----------------------------------

BR, NET = "jscale0", "10.77.0"
CG_V1 = "/sys/fs/cgroup/cpu"
CG_NAME = "junction-scaling"


def sh(*cmd, check=True):
    p = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and p.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p


class Net:
    """Bridge + one namespace per node (veth, NET.<i>/24); netem probe; cleanup."""

    def __init__(self, delay_ms=0.0):
        self.delay_ms = delay_ms
        self.ns = []
        self.latency = None
        self.latency_reason = ""

    def up(self, n):
        self.down()
        sh("ip", "link", "add", BR, "type", "bridge")
        sh("ip", "addr", "add", f"{NET}.254/24", "dev", BR)
        sh("ip", "link", "set", BR, "up")
        for i in range(1, n + 1):
            ns, veth = f"jscale{i}", f"jsv{i}"
            sh("ip", "netns", "add", ns)
            self.ns.append(ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", BR)
            sh("ip", "link", "set", veth, "up")
            sh("ip", "-n", ns, "addr", "add", f"{NET}.{i}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            if self.delay_ms > 0:
                # egress of each node: node->node RTT = 2 x self.delay_ms, client<->node RTT = self.delay_ms
                p = sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem",
                       "delay", f"{self.delay_ms}ms", check=False)
                if p.returncode:
                    self.latency = None
                    self.latency_reason = f"tc netem refused: {p.stderr.strip()} (kernel without sch_netem)"
                else:
                    self.latency = self.delay_ms
        if self.delay_ms <= 0:
            self.latency_reason = "DELAY_MS=0"

    def down(self):
        for ns in list(self.ns):
            sh("ip", "netns", "del", ns, check=False)
        self.ns = []
        for i in range(1, 33):  # leftovers of an interrupted run
            if os.path.exists(f"/var/run/netns/jscale{i}"):
                sh("ip", "netns", "del", f"jscale{i}", check=False)
        sh("ip", "link", "del", BR, check=False)


class Cpu:
    """Per-node CPU isolation: cgroup v2 cpu.max, v1 cpu.cfs_quota_us, or taskset."""

    def __init__(self, quota, name=CG_NAME):
        self.quota = quota
        CG = name  # noqa: N806
        self.kind = None
        self.root = None
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if not quota or quota <= 0:
            self.kind = "none"
        elif os.path.exists(v2) and "cpu" in open(v2).read().split():
            self.kind, self.root = "cgroup v2 cpu.max", f"/sys/fs/cgroup/{CG}"
        elif os.path.exists(os.path.join(CG_V1, "cpu.cfs_quota_us")):
            self.kind, self.root = "cgroup v1 cpu.cfs_quota_us", os.path.join(CG_V1, CG)
        else:
            self.kind = "taskset only"
        self.describe = ""

    def setup(self, n):
        self.cleanup()
        if self.kind == "none":
            self.describe = "none (nodes share the machine's cores)"
            return
        if self.root is None:
            self.describe = f"taskset: nodes pinned round-robin to CPUs 0..{os.cpu_count() - 1} (no cgroup cpu controller); no quota"
            return
        try:
            os.makedirs(self.root, exist_ok=True)
            if self.kind.startswith("cgroup v2"):
                with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
                    f.write("+cpu")
                with open(os.path.join(self.root, "cgroup.subtree_control"), "w") as f:
                    f.write("+cpu")
            for i in range(1, n + 1):
                d = os.path.join(self.root, f"n{i}")
                os.makedirs(d, exist_ok=True)
                period = 100000
                if self.kind.startswith("cgroup v2"):
                    with open(os.path.join(d, "cpu.max"), "w") as f:
                        f.write(f"{int(self.quota * period)} {period}")
                else:
                    with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
                        f.write(str(period))
                    with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
                        f.write(str(int(self.quota * period)))
            self.describe = (f"{self.kind}: each node in its own cgroup with {self.quota:g} core "
                             f"({int(self.quota * 100000)} us per 100 ms period); load generator unrestricted in the root cgroup")
        except OSError as e:
            self.kind, self.root = "taskset only", None
            self.describe = f"taskset only (cgroup setup failed: {e})"

    def path(self, i):
        return os.path.join(self.root, f"n{i}") if self.root else None

    def wrap(self, i):
        """taskset fallback: pin node i to one CPU (round-robin)."""
        if self.kind == "taskset only":
            return ["taskset", "-c", str((i - 1) % os.cpu_count())]
        return None

    def throttled(self, i):
        if not self.root:
            return None
        try:
            st = dict(line.split() for line in open(os.path.join(self.path(i), "cpu.stat")))
            return int(st.get("nr_throttled", 0))
        except OSError:
            return None

    def cleanup(self):
        if self.root and os.path.isdir(self.root):
            for d in sorted(os.listdir(self.root)):
                p = os.path.join(self.root, d)
                if os.path.isdir(p):
                    try:
                        os.rmdir(p)
                    except OSError:
                        pass
            try:
                os.rmdir(self.root)
            except OSError:
                pass


def settle_rss(pids, seconds=1.0):
    time.sleep(seconds)
    return [rss_bytes(p) for p in pids]


def workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
