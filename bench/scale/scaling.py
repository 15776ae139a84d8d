"""Validation of bench/model.py on simulated clusters (run through bench/scaling.sh).

Every node runs in its own network namespace (veth to a bridge in the root
namespace, 10.77.0.<i>/24), with added link latency (tc netem) when the kernel has
it, and with a CPU quota of its own (cgroup v2 cpu.max or v1 cfs_quota_us; else
taskset) so that nodes cannot borrow each other's time. The load generator
(junction-bench, one process per node) runs in the root namespace, unrestricted.

Env: SIZES ("1 3 5"), QUOTA (cores per node, 0.1), DELAY_MS (1), DURATION (5),
WARMUP (1), REPEAT (3: runs of each round, the median rate kept), KEEP_LOGS (keep the nodes' logs),
SUBSCRIBERS (10), INFLIGHT (128), COSTS (bench/results/costs.json), TOLERANCE (25). REEVAL=run.jsonl[,run.jsonl...]: no run (no root needed), the measured
rates of earlier runs against the model with COSTS, one error column per run.
"""
import datetime
import json
import os
import secrets
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import lib  # noqa: E402
import model  # noqa: E402

SIZES = [int(x) for x in os.environ.get("SIZES", "1 3 5").split()]
# 0.1 core: on this shared 2-core machine (other builds ran at load 5-8) nodes at 0.2 core
# got only 35-95 % of their quota at 3 and 5 nodes; at 0.1 they get all of it
QUOTA = float(os.environ.get("QUOTA", 0.1))
DELAY_MS = float(os.environ.get("DELAY_MS", 1))
DURATION = float(os.environ.get("DURATION", 5))
WARMUP = float(os.environ.get("WARMUP", 1))
SUBS = int(os.environ.get("SUBSCRIBERS", 10))
INFLIGHT = os.environ.get("INFLIGHT", "128")
TOL = float(os.environ.get("TOLERANCE", 25))
# one run of a round varies by up to ±20-30 % on this shared machine (cross-node calls at 3
# nodes: -9 to -30 % against one model in four runs of one build); the median of three is
# the figure the model is held to, as costs.sh takes medians of three for its constants
REPEAT = int(os.environ.get("REPEAT", 3))
COSTS = os.environ.get("COSTS", model.DEFAULT_COSTS)
def predict(m, n, label):
    """The model's rate for one round of main's (its shape: where callers, callees,
    publishers and subscribers are)."""
    return {"rpc-same": lambda: m.calls(n, cross=0.0), "rpc-cross": lambda: m.calls(n, cross=1.0),
            "pubsub-same": lambda: m.deliveries(n, s_local=SUBS, k_remote=0),
            "pubsub-cross": lambda: m.deliveries(n, s_local=0, k_remote=1, s_remote=SUBS),
            "churn-subscribe": lambda: m.subscribes(n, connect=False), "churn-register": lambda: m.registers(n),
            "rpc-random (mix)": lambda: m.calls(n)}[label]()["rate"]


def reevaluate(paths):
    """Prints the measured rates of earlier runs (their .jsonl) against the model with
    COSTS: error % per run and row, and how many rows are within the tolerance."""
    doc, k = load_costs()
    m = model.Model(k, cores=QUOTA, util=1.0, subs_per_node=SUBS)
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append([json.loads(line) for line in f if line.strip()][1:])
    keys = sorted({(r["n"], r["label"]) for rows in runs for r in rows})
    print(f"model: bench/model.py, costs {os.path.relpath(COSTS)} (measured {doc.get('measured_at')}), {QUOTA:g} core per node\n")
    print("| N | workload | " + " | ".join(os.path.basename(p).replace(".jsonl", "") for p in paths) + " |")
    print("| ---: | --- |" + " ---: |" * len(paths))
    within = [0] * len(paths)
    for n, label in keys:
        pred = predict(m, n, label)
        cells = []
        for i, rows in enumerate(runs):
            got = [r["rate"] for r in rows if (r["n"], r["label"]) == (n, label)]
            err = 100 * (got[0] - pred) / pred if got else None
            within[i] += err is not None and abs(err) <= TOL
            cells.append("" if err is None else f"{err:+.1f}%" + ("" if abs(err) <= TOL else " **no**"))
        print(f"| {n} | {label} | " + " | ".join(cells) + " |")
    print("| | within ±%g%% | " % TOL + " | ".join(f"{w} of {len(rows)}" for w, rows in zip(within, runs)) + " |")


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
    node_cpu_s = sum(w.cpu) / w.seconds
    return dict(label=label, n=len(nodes), rate=rate, node_util=[round(u, 3) for u in util],
                per_node_cpu_s=round(rate / node_cpu_s) if node_cpu_s else None,
                loadgen_cores=round(w.extra_cpu / w.seconds, 3), lost=lost,
                throttled_periods=[(b - a) if a is not None and b is not None else None for a, b in zip(thr0, thr1)],
                per_process=[r.get("rate") for r in results], loadavg=lib.loadavg())


def main():
    doc, k = load_costs()
    m = model.Model(k, cores=QUOTA, util=1.0, subs_per_node=SUBS)
    net, cpu = lib.Net(DELAY_MS), lib.Cpu(QUOTA)
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
            nodes = lib.start_cluster(n, wd, host=lambda i: f"{lib.NET}.{i}", ns=lambda i: f"jscale{i}",
                                      cgroup=cpu.path, secret=secret, wrap=cpu.wrap)
            ws = [x.ws for x in nodes]
            nxt = lambda i: (i + 1) % n  # noqa: E731
            rounds = [("rpc-same", [["rpc", "--url", ws[i], "--inflight", INFLIGHT] for i in range(n)])]
            if n > 1:
                rounds.append(("rpc-cross", [["rpc", "--url", ws[i], "--callee-url", ws[nxt(i)], "--inflight", INFLIGHT]
                                             for i in range(n)]))
            rounds.append(("pubsub-same", [["pubsub", "--url", ws[i], "--publishers", "1", "--subscribers", str(SUBS)]
                                           for i in range(n)]))
            if n > 1:
                rounds.append(("pubsub-cross", [["pubsub", "--url", ws[i], "--subscriber-url", ws[nxt(i)], "--publishers", "1",
                                                 "--subscribers", str(SUBS)] for i in range(n)]))
            # route churn, one junction-bench churn (20 clients, one request at a time) per node
            rounds.append(("churn-subscribe", [["churn", "--url", ws[i], "--kind", "subscribe"] for i in range(n)]))
            rounds.append(("churn-register", [["churn", "--url", ws[i], "--kind", "register"] for i in range(n)]))
            got = {}
            for label, args in rounds:
                pred = predict(m, n, label)
                runs = sorted((run_round(nodes, cpu, label, args) for _ in range(REPEAT)), key=lambda x: x["rate"])
                r = runs[len(runs) // 2]  # the median run (its CPU, load and throttling figures too)
                r["rates"] = [x["rate"] for x in runs]
                r["predicted"] = round(pred)
                r["error_pct"] = round(100 * (r["rate"] - pred) / pred, 1)
                # the same per CPU-second the nodes actually got (a quota is a cap: other load on
                # the machine can keep a node below it)
                pred_cpu = pred / (n * QUOTA)
                r["predicted_per_node_cpu_s"] = round(pred_cpu)
                r["error_per_cpu_pct"] = round(100 * (r["per_node_cpu_s"] - pred_cpu) / pred_cpu, 1) if r["per_node_cpu_s"] else None
                got[label] = r
                rows.append(r)
                print(f"  {label:13} measured {r['rate']:>9.0f}/s  model {pred:>9.0f}/s  error {r['error_pct']:+6.1f}%  "
                      f"per CPU-s error {r['error_per_cpu_pct']:+6.1f}%  node CPU/quota {r['node_util']}  loadgen {r['loadgen_cores']} cores  "
                      f"lost {r['lost']}  load {r['loadavg']:.1f}  runs {[round(x) for x in r['rates']]}", flush=True)
            # the model's own workload: calls between random nodes, (N-1)/N of them cross-node.
            # Per-call CPU adds up, so its capacity is the harmonic mix of the two uniform rounds.
            if n > 1:
                f = (n - 1) / n
                mix = 1 / ((1 - f) / got["rpc-same"]["rate"] + f / got["rpc-cross"]["rate"])
                pred = predict(m, n, "rpc-random (mix)")
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
        if os.environ.get("KEEP_LOGS"):
            print(f"node logs kept in {wd}", flush=True)
        else:
            shutil.rmtree(wd, ignore_errors=True)

    header = dict(kind="scaling-header", date=stamp, machine=doc.get("machine"), costs=COSTS,
                  costs_measured_at=doc.get("measured_at"), isolation=cpu.describe,
                  latency=(f"tc netem {net.latency:g} ms on each node's egress" if net.latency else f"none: {net.latency_reason}"),
                  quota_cores=QUOTA, subscribers=SUBS, inflight=INFLIGHT, duration=DURATION, warmup=WARMUP, repeat=REPEAT)
    with open(jsonl, "w") as f:
        f.write(json.dumps(header) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    lines = [f"Scaling validation {stamp} ({doc.get('machine')})", "",
             f"- isolation: {header['isolation']}", f"- latency: {header['latency']}",
             f"- network: one network namespace per node (veth to bridge {lib.BR}, {lib.NET}.<i>/24); load generator "
             f"(junction-bench, one process per node) in the root namespace",
             f"- model: bench/model.py with costs.json of {doc.get('measured_at')}, {QUOTA:g} core per node", "",
             "| N | workload | measured /s | model /s | error | within ±%g%% | per node CPU-s: error | node CPU / quota | load gen cores | load avg | runs /s |" % TOL,
             "| ---: | --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | --- |"]
    for r in rows:
        ok = "yes" if abs(r["error_pct"]) <= TOL else "**no**"
        util = "derived" if r.get("derived") else ", ".join(f"{u:.2f}" for u in r["node_util"])
        lg = "" if r.get("derived") else f"{r['loadgen_cores']:.2f}"
        pc = "" if r.get("derived") or r.get("error_per_cpu_pct") is None else f"{r['error_per_cpu_pct']:+.1f}%"
        la = "" if r.get("derived") else f"{r['loadavg']:.1f}"
        rs = ", ".join(f"{x:,.0f}" for x in r.get("rates", []))
        lines.append(f"| {r['n']} | {r['label']} | {r['rate']:,.0f} | {r['predicted']:,.0f} | {r['error_pct']:+.1f}% | {ok} | {pc} | {util} | {lg} | {la} | {rs} |")
    lines += ["", "rpc: calls/s; pubsub: deliveries/s (1 publisher and %d subscribers per node; `same`: on the same node, "
              "`cross`: subscribers on the next node). `rpc-random (mix)` is the model's workload ((N-1)/N of the calls "
              "cross-node), derived from the two uniform rounds as 1/R = (1/N)/R_same + ((N-1)/N)/R_cross. "
              "churn: SUBSCRIBE(new topic)+UNSUBSCRIBE or REGISTER+UNREGISTER per second, 20 clients per node each one "
              "request at a time (a node below its quota there is bound by round trips, not CPU). "
              "`per node CPU-s: error`: measured operations per CPU-second the nodes used against the model's per CPU-second "
              "(the error that remains when a node did not get its whole quota). `measured`: the median of the %d runs "
              "in `runs` (the other columns are the median run's)." % (SUBS, REPEAT)]
    text = "\n".join(lines)
    with open(md, "w") as f:
        f.write(text + "\n")
    print()
    print(text)
    print(f"\nwrote {os.path.relpath(md, lib.ROOT)} and {os.path.relpath(jsonl, lib.ROOT)}")


def load_costs():
    return model.load(COSTS)


if __name__ == "__main__":
    import signal
    # SIGTERM/SIGHUP end the run through the `finally` that stops the nodes and removes
    # the namespaces and cgroups (Ctrl-C does already)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))
    if os.environ.get("REEVAL"):
        reevaluate(os.environ["REEVAL"].split(","))
    else:
        main()
