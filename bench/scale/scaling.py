"""Validation of bench/model.py on simulated clusters (run through bench/scaling.sh).

Every node runs in its own network namespace (veth to a bridge in the root
namespace, 10.77.0.<i>/24), with added link latency (tc netem) when the kernel has
it, and with a CPU quota of its own (cgroup v2 cpu.max or v1 cfs_quota_us; else
taskset) so that nodes cannot borrow each other's time. The load generator
(junction-bench, one process per node) runs in the root namespace, unrestricted.

Env: SIZES ("1 3 5"), QUOTA (cores per node, 0.2), DELAY_MS (1), DURATION (5),
WARMUP (1), SUBSCRIBERS (10), INFLIGHT (128), COSTS (bench/results/costs.json),
TOLERANCE (25).
"""
import datetime
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import lib  # noqa: E402
import model  # noqa: E402

SIZES = [int(x) for x in os.environ.get("SIZES", "1 3 5").split()]
QUOTA = float(os.environ.get("QUOTA", 0.2))
DELAY_MS = float(os.environ.get("DELAY_MS", 1))
DURATION = float(os.environ.get("DURATION", 5))
WARMUP = float(os.environ.get("WARMUP", 1))
SUBS = int(os.environ.get("SUBSCRIBERS", 10))
INFLIGHT = os.environ.get("INFLIGHT", "128")
TOL = float(os.environ.get("TOLERANCE", 25))
COSTS = os.environ.get("COSTS", model.DEFAULT_COSTS)
BR, NET = "jscale0", "10.77.0"
CG_V1 = "/sys/fs/cgroup/cpu"
CG_NAME = "junction-scaling"


def sh(*cmd, check=True):
    p = subprocess.run(list(cmd), capture_output=True, text=True)
    if check and p.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {p.stderr.strip()}")
    return p


class Net:
    """Bridge + one namespace per node; netem probe; cleanup."""

    def __init__(self):
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
            if DELAY_MS > 0:
                # egress of each node: node->node RTT = 2 x DELAY_MS, client<->node RTT = DELAY_MS
                p = sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "netem",
                       "delay", f"{DELAY_MS}ms", check=False)
                if p.returncode:
                    self.latency = None
                    self.latency_reason = f"tc netem refused: {p.stderr.strip()} (kernel without sch_netem)"
                else:
                    self.latency = DELAY_MS
        if DELAY_MS <= 0:
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

    def __init__(self):
        self.kind = None
        self.root = None
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if os.path.exists(v2) and "cpu" in open(v2).read().split():
            self.kind, self.root = "cgroup v2 cpu.max", f"/sys/fs/cgroup/{CG_NAME}"
        elif os.path.exists(os.path.join(CG_V1, "cpu.cfs_quota_us")):
            self.kind, self.root = "cgroup v1 cpu.cfs_quota_us", os.path.join(CG_V1, CG_NAME)
        else:
            self.kind = "taskset only"
        self.describe = ""

    def setup(self, n):
        self.cleanup()
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
                        f.write(f"{int(QUOTA * period)} {period}")
                else:
                    with open(os.path.join(d, "cpu.cfs_period_us"), "w") as f:
                        f.write(str(period))
                    with open(os.path.join(d, "cpu.cfs_quota_us"), "w") as f:
                        f.write(str(int(QUOTA * period)))
            self.describe = (f"{self.kind}: each node in its own cgroup with {QUOTA:g} core "
                             f"({int(QUOTA * 100000)} us per 100 ms period); load generator unrestricted in the root cgroup")
        except OSError as e:
            self.kind, self.root = "taskset only", None
            self.describe = f"taskset only (cgroup setup failed: {e})"

    def path(self, i):
        return os.path.join(self.root, f"n{i}") if self.root else None

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


def run_round(nodes, cpu, label, per_node_args):
    """Starts one junction-bench per node at once, samples every node's CPU inside
    the measured window, sums the rates."""
    procs = [lib.bench_popen(a + ["--warmup", str(WARMUP), "--duration", str(DURATION), "--label", f"{label}-{i + 1}"])
             for i, a in enumerate(per_node_args)]
    time.sleep(WARMUP + 1.0)
    thr0 = [cpu.throttled(i + 1) for i in range(len(nodes))]
    w = lib.Window(nodes, [p.pid for p in procs])
    w.start()
    time.sleep(max(1.0, DURATION - 1.5))
    w.stop()
    thr1 = [cpu.throttled(i + 1) for i in range(len(nodes))]
    results = [lib.bench_result(p, timeout=120) for p in procs]
    rate = sum(r.get("rate", 0) for r in results)
    util = [c / w.seconds / QUOTA if cpu.root else c / w.seconds for c in w.cpu]
    lost = sum(r.get("lost", 0) or 0 for r in results)
    return dict(label=label, n=len(nodes), rate=rate, node_util=[round(u, 3) for u in util],
                loadgen_cores=round(w.extra_cpu / w.seconds, 3), lost=lost,
                throttled_periods=[(b - a) if a is not None and b is not None else None for a, b in zip(thr0, thr1)],
                per_process=[r.get("rate") for r in results], loadavg=lib.loadavg())


def main():
    doc, k = load_costs()
    m = model.Model(k, cores=QUOTA, util=1.0, subs_per_node=SUBS)
    net, cpu = Net(), Cpu()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%M%SZ")
    os.makedirs(os.path.join(lib.ROOT, "target/bench"), exist_ok=True)
    jsonl = os.path.join(lib.ROOT, f"target/bench/scaling-{stamp}.jsonl")
    md = os.path.join(lib.ROOT, f"target/bench/scaling-{stamp}.md")
    rows = []
    wd = lib.workdir("junction-scaling-")
    secret = secrets.token_hex(16)
    nodes = []
    try:
        for n in SIZES:
            net.up(n)
            cpu.setup(n)
            print(f"== {n} node(s)", flush=True)
            nodes = lib.start_cluster(n, wd, host=lambda i: f"{NET}.{i}", ns=lambda i: f"jscale{i}",
                                      cgroup=cpu.path, secret=secret)
            ws = [x.ws for x in nodes]
            nxt = lambda i: (i + 1) % n  # noqa: E731
            rounds = [("rpc-same", [["rpc", "--url", ws[i], "--inflight", INFLIGHT] for i in range(n)],
                       m.calls(n, cross=0.0)["rate"])]
            if n > 1:
                rounds.append(("rpc-cross", [["rpc", "--url", ws[i], "--callee-url", ws[nxt(i)], "--inflight", INFLIGHT]
                                             for i in range(n)], m.calls(n, cross=1.0)["rate"]))
            rounds.append(("pubsub-same", [["pubsub", "--url", ws[i], "--publishers", "1", "--subscribers", str(SUBS)]
                                           for i in range(n)], m.deliveries(n, s_local=SUBS, k_remote=0)["rate"]))
            if n > 1:
                rounds.append(("pubsub-cross", [["pubsub", "--url", ws[i], "--subscriber-url", ws[nxt(i)], "--publishers", "1",
                                                 "--subscribers", str(SUBS)] for i in range(n)],
                               m.deliveries(n, s_local=0, k_remote=1, s_remote=SUBS)["rate"]))
            got = {}
            for label, args, pred in rounds:
                r = run_round(nodes, cpu, label, args)
                r["predicted"] = round(pred)
                r["error_pct"] = round(100 * (r["rate"] - pred) / pred, 1)
                got[label] = r
                rows.append(r)
                print(f"  {label:13} measured {r['rate']:>9.0f}/s  model {pred:>9.0f}/s  error {r['error_pct']:+6.1f}%  "
                      f"node util {r['node_util']}  loadgen {r['loadgen_cores']} cores  lost {r['lost']}", flush=True)
            # the model's own workload: calls between random nodes, (N-1)/N of them cross-node.
            # Per-call CPU adds up, so its capacity is the harmonic mix of the two uniform rounds.
            if n > 1:
                f = (n - 1) / n
                mix = 1 / ((1 - f) / got["rpc-same"]["rate"] + f / got["rpc-cross"]["rate"])
                pred = m.calls(n)["rate"]
                rows.append(dict(label="rpc-random (mix)", n=n, rate=round(mix), predicted=round(pred),
                                 error_pct=round(100 * (mix - pred) / pred, 1), derived=True))
            for x in nodes:
                x.stop()
            nodes = []
    finally:
        for x in nodes:
            x.stop()
        time.sleep(0.3)
        cpu.cleanup()
        net.down()
        shutil.rmtree(wd, ignore_errors=True)

    header = dict(kind="scaling-header", date=stamp, machine=doc.get("machine"), costs=COSTS,
                  costs_measured_at=doc.get("measured_at"), isolation=cpu.describe,
                  latency=(f"tc netem {net.latency:g} ms on each node's egress" if net.latency else f"none: {net.latency_reason}"),
                  quota_cores=QUOTA, subscribers=SUBS, inflight=INFLIGHT, duration=DURATION, warmup=WARMUP)
    with open(jsonl, "w") as f:
        f.write(json.dumps(header) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    lines = [f"Scaling validation {stamp} ({doc.get('machine')})", "",
             f"- isolation: {header['isolation']}", f"- latency: {header['latency']}",
             f"- network: one network namespace per node (veth to bridge {BR}, {NET}.<i>/24); load generator "
             f"(junction-bench, one process per node) in the root namespace",
             f"- model: bench/model.py with costs.json of {doc.get('measured_at')}, {QUOTA:g} core per node", "",
             "| N | workload | measured /s | model /s | error | within ±%g%% | node CPU / quota | load gen cores |" % TOL,
             "| ---: | --- | ---: | ---: | ---: | --- | --- | ---: |"]
    for r in rows:
        ok = "yes" if abs(r["error_pct"]) <= TOL else "**no**"
        util = "derived" if r.get("derived") else ", ".join(f"{u:.2f}" for u in r["node_util"])
        lg = "" if r.get("derived") else f"{r['loadgen_cores']:.2f}"
        lines.append(f"| {r['n']} | {r['label']} | {r['rate']:,.0f} | {r['predicted']:,.0f} | {r['error_pct']:+.1f}% | {ok} | {util} | {lg} |")
    lines += ["", "rpc: calls/s; pubsub: deliveries/s (1 publisher and %d subscribers per node; `same`: on the same node, "
              "`cross`: subscribers on the next node). `rpc-random (mix)` is the model's workload ((N-1)/N of the calls "
              "cross-node), derived from the two uniform rounds as 1/R = (1/N)/R_same + ((N-1)/N)/R_cross." % SUBS]
    text = "\n".join(lines)
    with open(md, "w") as f:
        f.write(text + "\n")
    print()
    print(text)
    print(f"\nwrote {os.path.relpath(md, lib.ROOT)} and {os.path.relpath(jsonl, lib.ROOT)}")


def load_costs():
    return model.load(COSTS)


if __name__ == "__main__":
    main()
