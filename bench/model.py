#!/usr/bin/env python3
"""Junction scaling model (issue #17): reads the per-node cost constants that
bench/costs.sh measured (bench/results/costs.json) and predicts, for a cluster of
N = 1..50 nodes of C cores and M GiB each, the sustainable

  calls/s      RPC between random nodes (callers and callees spread evenly over the
               nodes; a fraction (N-1)/N of the calls cross nodes),
  deliveries/s one topic's subscribers on every node (S per node), publishers spread
               evenly: each publication is forwarded once to every other node,
  subscribes/s subscription churn as in a reconnect storm: sessions reconnect and
               SUBSCRIBE new topics (K per session), every new topic announced to
               every other node and acknowledged (spread over all nodes; and the
               time one node's sessions take to come back to it),
  registers/s  REGISTER+UNREGISTER churn, committed through the Raft leader,

and names the first resource that runs out: node CPU (and how much of it is
per-link work of the full mesh), link bandwidth (NIC), the Raft leader (every
REGISTER is a log entry the leader replicates to every other node), or memory
(every node holds every registration, the interest of every other node, every
retained event, and a connection per peer).

    python3 bench/model.py                     # table for N = 1..50 (selected rows)
    python3 bench/model.py --all --cores 4 --mem-gib 16
    python3 bench/model.py --json  | --markdown
Stdlib only. `import model` gives the same functions to bench/scaling.sh.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_COSTS = os.path.join(HERE, "results", "costs.json")


def load(path=DEFAULT_COSTS):
    with open(path) as f:
        doc = json.load(f)
    return doc, {k: v["value"] for k, v in doc["constants"].items()}


class Model:
    def __init__(self, k, cores=1.0, mem_gib=8.0, nic_gbps=10.0, util=1.0, sessions=10000, topics=10,
                 regs=0.1, retained=10000, subs_per_node=10, voters=3):
        self.k = k
        self.cores = cores
        self.mem = mem_gib * 2**30
        self.nic = nic_gbps * 1e9 / 8  # bytes/s, each direction
        self.util = util
        self.sessions = sessions      # sessions per node (memory, storm)
        self.topics = topics          # subscriptions per session (storm: new topics)
        self.regs = regs              # registrations per session
        self.retained = retained      # retained events in the realm
        self.subs_per_node = subs_per_node
        self.voters = voters

    # --- helpers ---------------------------------------------------------------------
    def us(self, name):
        return self.k[name] * 1e-6  # µs -> s of CPU

    def avail(self, n, whole=False):
        """Cores per node left for work after the idle cost of the node and its links.
        whole=True: all of them, for per-operation figures that costs.sh took as a node's
        whole CPU under load (a lone node's, and the *_loaded churn at every node), which
        carry the idle work already (subtracting it again cost up to 10 % at 0.1 core)."""
        k = self.k
        if whole:
            return self.cores * self.util
        return self.cores * self.util - k["cpu_idle_node_cores"] - (n - 1) * k["cpu_idle_per_peer_cores"]

    @staticmethod
    def _limit(cands):
        name, rate, info = min(cands, key=lambda c: c[1])
        return dict(rate=max(0.0, rate), limit=name, **info)

    # --- calls -----------------------------------------------------------------------
    def call_cost(self, n, cross):
        """Cluster CPU seconds per call and the per-link share, with a fraction `cross`
        of calls crossing nodes (caller and callee nodes spread evenly)."""
        # a lone node and a cluster node each with its own measured figure: in four
        # costs.sh runs the lone node's call cost 3.6/4.4/5.2/3.6 µs against 4.2/4.2/4.3/4.9
        # on node 1 of 3, noisy but not one figure
        same = self.us("cpu_call_lone_us") if n == 1 else self.us("cpu_call_same_node_us")
        # a cross call's cost where every node is a caller's and a callee's node, links
        # busy both ways (the ring of costs.sh; RPC between random nodes is that shape);
        # older files have only the one-way split (caller + callee), against which
        # earlier validations' ring rounds ran 9-30 % low (docs/scaling.md)
        if "cpu_call_cross_ring_us" in self.k:
            x = self.us("cpu_call_cross_ring_us")
        else:
            x = self.us("cpu_call_cross_caller_us") + self.us("cpu_call_cross_callee_us")
        total = (1 - cross) * same + cross * x
        # the extra a cross call costs over a same-node one is the link's work
        link = cross * max(0.0, x - same)
        return total, link

    def calls(self, n, cross=None):
        cross = (n - 1) / n if cross is None else cross
        per_call, link = self.call_cost(n, cross)
        cpu_rate = n * self.avail(n, whole=n == 1) / per_call
        cands = [("CPU: links" if link / per_call > 0.5 else "CPU", cpu_rate, {})]
        if n > 1 and cross > 0:
            per_node_bytes = cross / n * self.k["link_bytes_per_call"]  # per call, out of one node
            cands.append(("network", self.nic / per_node_bytes, {}))
        r = self._limit(cands)
        r["link_cpu_share"] = round(link / per_call, 3)
        return r

    # --- deliveries ------------------------------------------------------------------
    def forward_cost(self, k_remote):
        """CPU seconds the publisher's node spends per publication, beyond the PUBLISH
        itself, to forward it to k_remote other nodes."""
        if not k_remote:
            return 0.0
        if "cpu_publish_forward_4_us" not in self.k:  # an older costs.json: one remote node measured
            return k_remote * self.us("cpu_forward_per_node_us")
        # the publisher's node measured with 1 remote node (3-node cluster) and with 4 (5-node):
        # a line through both, its slope the cost per further remote node
        p1 = self.us("cpu_publish_forward_us")
        return max(0.0, p1 + (k_remote - 1) * self.forward_per_node() - self.us("cpu_publish_lone_us"))

    def forward_per_node(self):
        """The publisher node's CPU seconds per publication for each further remote node."""
        if "cpu_publish_forward_4_us" not in self.k:
            return self.us("cpu_forward_per_node_us")
        return max(0.0, (self.us("cpu_publish_forward_4_us") - self.us("cpu_publish_forward_us")) / 3)

    def pub_cost(self, s_local, k_remote, s_remote):
        """Cluster CPU seconds per publication and its per-link part: S_local local
        subscribers on the publisher's node, k_remote other nodes with s_remote each."""
        fwd = self.forward_cost(k_remote)
        receive = k_remote * (self.us("cpu_event_receive_us") + s_remote * self.us("cpu_delivery_remote_us"))
        total = self.us("cpu_publish_lone_us") + s_local * self.us("cpu_delivery_local_us") + fwd + receive
        link = fwd + k_remote * self.us("cpu_event_receive_us")
        return total, link

    def deliveries(self, n, s_local=None, k_remote=None, s_remote=None):
        s = self.subs_per_node
        s_local = s if s_local is None else s_local
        k_remote = n - 1 if k_remote is None else k_remote
        s_remote = s if s_remote is None else s_remote
        per_pub, link = self.pub_cost(s_local, k_remote, s_remote)
        fan = s_local + k_remote * s_remote
        pubs = n * self.avail(n, whole=n == 1) / per_pub
        cands = [("CPU: links" if link / per_pub > 0.5 else "CPU", pubs * fan, {})]
        if k_remote:
            per_node_bytes = k_remote * self.k["link_bytes_per_event"] / n  # per publication, out of one node
            cands.append(("network", self.nic / per_node_bytes * fan, {}))
        r = self._limit(cands)
        r["publications"] = round(r["rate"] / fan) if fan else 0
        r["link_cpu_share"] = round(link / per_pub, 3)
        return r

    # --- subscription churn (reconnect storm) ----------------------------------------
    def subscribes(self, n, connect=True):
        """connect=False: SUBSCRIBE+UNSUBSCRIBE churn of long-lived sessions (no reconnects)."""
        k = self.k
        whole = n == 1 or "cpu_subscribe_per_peer_loaded_us" in k
        if n == 1:
            per, link = self.us("cpu_subscribe_lone_us"), 0.0
        elif "cpu_subscribe_per_peer_loaded_us" in k:
            # every node churning: per peer and new topic, the announcing and the acknowledging
            # node together, measured with all 3 nodes churning (frames batch under load; the
            # single-origin split below costs 1.9x as much per peer, peers mostly idle). With
            # the 5-node figure, the peers' part is interpolated between 3 and 5 nodes and
            # beyond 5 grown by the slope between them, not less than flat (as for REGISTER)
            link = (n - 1) * self.us("cpu_subscribe_per_peer_loaded_us")
            if n > 3 and "cpu_subscribe_per_peer_loaded_5_us" in k:
                p3, p5 = 2 * self.us("cpu_subscribe_per_peer_loaded_us"), 4 * self.us("cpu_subscribe_per_peer_loaded_5_us")
                link = p3 + (n - 3) * (p5 - p3) / 2 if n <= 5 else p5 + (n - 5) * max(0.0, (p5 - p3) / 2)
            per = self.us("cpu_subscribe_lone_us") + link
        else:
            origin = self.us("cpu_subscribe_lone_us") + (n - 1) * self.us("cpu_subscribe_origin_per_peer_us")
            peers = (n - 1) * self.us("cpu_subscribe_peer_us")
            per = origin + peers
            link = (n - 1) * (self.us("cpu_subscribe_origin_per_peer_us") + self.us("cpu_subscribe_peer_us"))
        if connect:
            per += self.us("cpu_session_connect_us") / self.topics  # the session's reconnect, per subscription
        rate = n * self.avail(n, whole) / per
        cands = [("CPU: links" if link / per > 0.5 else "CPU", rate, {})]
        if n > 1:
            cands.append(("network", self.nic / (k["link_bytes_per_subscribe"] / 2 * (n - 1) / n * 2), {}))
        r = self._limit(cands)
        r["sessions_per_s"] = round(r["rate"] / self.topics)
        # one node's sessions reconnect to it (a node restart, a network blip of one node):
        # the subscribing node announces every new topic to its N-1 peers itself
        origin = (self.us("cpu_subscribe_lone_us") + (n - 1) * self.us("cpu_subscribe_origin_per_peer_us")
                  + self.us("cpu_session_connect_us") / self.topics) if n > 1 else per
        subs = self.sessions * self.topics
        r["one_node_storm_s"] = round(max(subs * origin / self.avail(n),
                                          subs * (self.us("cpu_subscribe_peer_us") if n > 1 else 0) / self.avail(n)), 1)
        r["link_cpu_share"] = round(link / per, 3)
        return r

    # --- registrations through Raft ----------------------------------------------------
    def registers(self, n):
        """REGISTER+UNREGISTER cycles/s, spread evenly over the nodes as origins. The
        leader appends and replicates every entry to every other node (voters and
        learners); every node applies it."""
        if n == 1:
            per_leader = self.us("cpu_register_lone_us")
            return dict(rate=self.avail(1, whole=True) / per_leader, limit="CPU (Raft log, own node)", link_cpu_share=0.0)
        if "cpu_register_leader_loaded_us" in self.k:
            # measured with every node registering at once (proposals batch under load): from a
            # lone node to 3 nodes the leader's cost grows with the nodes it replicates to; with the
            # 5-node figures, interpolated between 3 and 5 and beyond 5 grown by the slope between
            # them, not less than flat (an older costs.json: the 1-to-3 slope, extrapolated)
            lone = self.us("cpu_register_lone_us")
            l3, f3 = self.us("cpu_register_leader_loaded_us"), self.us("cpu_register_follower_loaded_us")
            leader = lone + (n - 1) * max(0.0, l3 - lone) / 2
            follower = f3
            if n > 3 and "cpu_register_leader_loaded_5_us" in self.k:
                l5, f5 = self.us("cpu_register_leader_loaded_5_us"), self.us("cpu_register_follower_loaded_5_us")
                leader = l3 + (n - 3) * (l5 - l3) / 2 if n <= 5 else l5 + (n - 5) * self.register_per_follower()
                # a follower applies every entry whatever N: interpolated between 3 and 5, then held
                follower = f3 + (min(n, 5) - 3) * (f5 - f3) / 2
            share = self.avail(n, whole=True)
            cands = [("Raft leader CPU", share / leader, {}), ("CPU (Raft apply)", share / follower, {})]
            return dict(self._limit(cands), link_cpu_share=None)
        origin = self.us("cpu_register_origin_us") - self.us("cpu_register_follower_us")
        leader = self.us("cpu_register_lone_us") + (n - 1) * self.us("cpu_register_leader_per_follower_us")
        follower = self.us("cpu_register_follower_us")
        # per cycle: the leader does its part + 1/n of the origins; a follower applies + 1/n of the origins
        lead_rate = self.avail(n) / (leader + origin / n)
        foll_rate = self.avail(n) / (follower + origin / n)
        cands = [("Raft leader CPU", lead_rate, {}), ("CPU (Raft apply)", foll_rate, {})]
        return dict(self._limit(cands), link_cpu_share=None)

    def register_per_follower(self):
        """The Raft leader's CPU seconds per REGISTER cycle for each node beyond 5: the slope
        between the 3- and 5-node measurements (all nodes registering), at least 0 (a leader
        whose cost per cycle fell from 3 to 5 nodes, its batches growing with the proposers,
        is held at the 5-node cost rather than extrapolated further down)."""
        return max(0.0, (self.us("cpu_register_leader_loaded_5_us") - self.us("cpu_register_leader_loaded_us")) / 2)

    # --- memory -------------------------------------------------------------------------
    def memory(self, n):
        """Bytes per node at the population, its terms, and the sessions per node the
        node's memory allows."""
        k = self.k
        s = self.sessions
        terms = {
            "base": k["mem_node_base_bytes"],
            "links": (n - 1) * k["mem_per_peer_bytes"],
            "sessions": s * (k["mem_session_bytes"] + self.topics * k["mem_subscription_origin_bytes"]),
            "interest of other nodes": (n - 1) * s * self.topics * k["mem_interest_peer_bytes"],
            "registrations (replicated)": n * s * self.regs * k["mem_registration_replica_bytes"],
            "retained (replicated)": self.retained * k["mem_retained_replica_bytes"],
        }
        if n == 1:
            terms["interest of other nodes"] = 0
        total = sum(terms.values())
        fixed = terms["base"] + terms["links"] + terms["retained (replicated)"]
        per_session = (total - fixed) / s if s else 0
        max_sessions = (self.mem - fixed) / per_session if per_session else float("inf")
        top = max((t for t in terms if t not in ("base",)), key=lambda t: terms[t])
        return dict(bytes=total, terms=terms, max_sessions_per_node=max(0, max_sessions), largest=top,
                    fits=total <= self.mem)

    def row(self, n):
        c, d, s, r, m = self.calls(n), self.deliveries(n), self.subscribes(n), self.registers(n), self.memory(n)
        return dict(n=n, calls=c, deliveries=d, subscribes=s, registers=r, memory=m,
                    links=n * (n - 1), connections_per_node=2 * (n - 1))


def fmt(x):
    if x >= 1e9:
        return f"{x / 1e9:.2f}G"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.0f}k"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def table(rows, markdown=False):
    head = ["N", "calls/s", "limit", "deliveries/s", "limit", "subscribes/s", "limit", "1-node storm s",
            "registers/s", "limit", "mem/node", "largest memory term", "links"]
    out = []
    for r in rows:
        m = r["memory"]
        out.append([str(r["n"]), fmt(r["calls"]["rate"]), r["calls"]["limit"], fmt(r["deliveries"]["rate"]),
                    r["deliveries"]["limit"], fmt(r["subscribes"]["rate"]), r["subscribes"]["limit"],
                    f'{r["subscribes"]["one_node_storm_s"]:g}',
                    fmt(r["registers"]["rate"]), r["registers"]["limit"],
                    f"{m['bytes'] / 2**20:.0f} MiB" + ("" if m["fits"] else " (!)"), m["largest"], str(r["links"])])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---:" if h not in ("limit", "largest memory term") else "---" for h in head]) + "|"]
        lines += ["| " + " | ".join(o) + " |" for o in out]
        return "\n".join(lines)
    w = [max(len(h), *(len(o[i]) for o in out)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w[i]) if "limit" not in h and "term" not in h else h.ljust(w[i]) for i, h in enumerate(head))]
    for o in out:
        lines.append("  ".join(v.rjust(w[i]) if "limit" not in head[i] and "term" not in head[i] else v.ljust(w[i]) for i, v in enumerate(o)))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--costs", default=DEFAULT_COSTS)
    ap.add_argument("--cores", type=float, default=1.0, help="cores per node (1)")
    ap.add_argument("--mem-gib", type=float, default=8.0, help="memory per node, GiB (8)")
    ap.add_argument("--nic-gbps", type=float, default=10.0, help="network per node and direction, Gbit/s (10)")
    ap.add_argument("--util", type=float, default=1.0, help="fraction of the cores to use (1.0 = saturation; 0.7 for headroom)")
    ap.add_argument("--sessions", type=int, default=10000, help="sessions per node (memory, storm) (10000)")
    ap.add_argument("--topics", type=int, default=10, help="subscriptions per session, new topics in a storm (10)")
    ap.add_argument("--regs", type=float, default=0.1, help="registrations per session (0.1)")
    ap.add_argument("--retained", type=int, default=10000, help="retained events in the realm (10000)")
    ap.add_argument("--subs-per-node", type=int, default=10, help="subscribers of the fan-out topic per node (10)")
    ap.add_argument("--max-n", type=int, default=50)
    ap.add_argument("--all", action="store_true", help="every N, not the selected rows")
    ap.add_argument("--n", type=int, action="append", help="only these N (repeatable)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--costs-table", action="store_true", help="print costs.json's constants as a Markdown table")
    a = ap.parse_args()
    doc, k = load(a.costs)
    if a.costs_table:
        print(f"Measured {doc.get('measured_at')} on {doc.get('machine')} (git {doc.get('git')}).\n")
        print("| constant | value | unit |\n| --- | ---: | --- |")
        for name, c in doc["constants"].items():
            v = c["value"]
            v = "–" if v is None else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}" if isinstance(v, float) else f"{v:,}")
            print(f"| `{name}` | {v} | {c['unit']} |")
        return
    m = Model(k, a.cores, a.mem_gib, a.nic_gbps, a.util, a.sessions, a.topics, a.regs, a.retained, a.subs_per_node)
    ns = a.n or (list(range(1, a.max_n + 1)) if a.all else [n for n in (1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 40, 50) if n <= a.max_n])
    rows = [m.row(n) for n in ns]
    if a.json:
        print(json.dumps(dict(costs=a.costs, measured_at=doc.get("measured_at"), params=vars(a), rows=rows), indent=1))
        return
    print(f"# costs: {os.path.relpath(a.costs)} (measured {doc.get('measured_at')}, {doc.get('machine')})")
    print(f"# node: {a.cores:g} cores at {a.util:.0%}, {a.mem_gib:g} GiB, {a.nic_gbps:g} Gbit/s; {a.sessions} sessions/node, "
          f"{a.topics} subscriptions and {a.regs:g} registrations per session, {a.retained} retained events; "
          f"fan-out: {a.subs_per_node} subscribers per node")
    print(table(rows, a.markdown))
    if not a.markdown:
        print("# limit 'CPU: links' = more than half of the CPU per operation is per-link work (forwarding, interest, "
              "cross-node calls); (!) = the population does not fit in memory")
        print("# 1-node storm s = one node's sessions x topics re-subscribing to it (new topics), bound by that node's CPU")


if __name__ == "__main__":
    main()
