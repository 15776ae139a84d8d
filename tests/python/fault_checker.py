# Checker for the cluster fault suite (test_cluster_faults.py): pure functions
# over the histories the workload recorded, no I/O, no clock. Unit tests:
# test_fault_checker.py.
#
# All times are seconds on one monotonic clock (the test's event loop), so an
# invocation's start and a caller's answer are comparable: callers, callees,
# publishers and subscribers all run in the test process.
#
# Properties (each function returns the violations, empty when it holds):
#
# - `answered_twice(calls)`: a call whose caller received more than one answer
#   (RESULT or ERROR for the call's request id on the caller's session, counted
#   on the wire before Autobahn drops a second one), or whose RESULT carried
#   another call's id.
# - `never_answered(calls)`: a call that got no answer at all by the end of the
#   run (the test stops issuing, lets churn settle and waits a grace period
#   first). An answer is a RESULT, a router ERROR, or the caller's own session
#   ending under the call (its node was killed, or the node closed the
#   session: Autobahn fails the call locally, no ERROR came for it).
# - `late_executions(calls, invocations)`: an invocation of a call that
#   started executing (the callee's handler was entered) after the caller had
#   received a router ERROR for that call. A caller whose session ended under
#   the call has no ERROR from the router, so its call is not judged here.
# - `lost_events(publications, subscriptions, faults, grace, end)`: an event
#   that a live subscriber never received although the router owed it:
#   the publication was acknowledged (PUBLISHED), it was sent after the
#   subscription's SUBSCRIBED arrived, the subscriber's session was still
#   alive `grace` seconds after the PUBLISHED (and that instant is before
#   `end`, when the test stopped listening), and no fault window intersects
#   [sent, acked + grace]. A fault window runs from the injection (kill -9,
#   SIGSTOP) until the cluster is healed again (every member up and applied
#   up to the leader's commit index) plus a settle margin; so what this finds
#   is a subscription lost once churn settled, not an event dropped by a dying
#   node.
# - `single_overlaps(invocations, lease)`: for a `single` registration, the
#   tenure of a callee registration is [first invocation started, last
#   invocation ended]; two tenures of different callees overlapping by more
#   than `lease` seconds means two callees executed invocations at the same
#   time beyond the lease (a frozen owner kept serving after the standby took
#   over).
# - `bad_testaments(testaments)`: a testament published more than once
#   (distinct publication ids seen by the observers on the testament topic),
#   for any session; and a testament never published although its session's
#   node was killed (the observers were alive on the other nodes).
# - `unrestored(calls, faults, procs, end)`: a fault after whose healing a
#   procedure never served a call again: no call of it issued between the
#   fault's end and the next fault's start (or the end of the run) got a
#   RESULT. After a whole-cluster restart this is what says that clients
#   registered again and the restarted cluster routes to them.
# - `unrestored_events(publications, subscriptions, faults, nodes, end)`: the
#   same for subscriptions: a healed fault after which some node had no
#   subscriber receiving an event published between the fault's end and the
#   next fault's start (or the end of the run). `lost_events` alone would not
#   see a subscriber that never subscribed again (nothing owed to it).
#
# A fault's `node` is 0 when it hit every node at once (whole-cluster restart).
from dataclasses import dataclass, field


@dataclass
class Call:
    call_id: str
    proc: str
    caller: str  # caller session label
    node: int  # the caller's node
    issued_at: float
    outcome: str | None = None  # "result" / "error" / "session_lost"; None: no answer
    answered_at: float | None = None  # first answer on the wire (or the session loss)
    error: str | None = None  # the ERROR's URI (session_lost: the close reason, if any)
    wire_answers: int = 0  # RESULT/ERROR messages for the call's request id
    result_call_id: str | None = None  # the call id the RESULT carried back


@dataclass
class Invocation:
    call_id: str
    proc: str
    callee: str  # callee registration label (unique per session and registration)
    node: int
    started_at: float
    ended_at: float | None = None


@dataclass
class Publication:
    pub_id: str
    publisher: str
    node: int
    sent_at: float
    acked_at: float | None = None  # None: not acknowledged (error, session lost, no answer)


@dataclass
class Subscription:
    label: str
    node: int
    subscribed_at: float  # SUBSCRIBED received
    gone_at: float | None = None  # the session ended; None: alive to the end
    received: dict = field(default_factory=dict)  # pub_id -> times received


@dataclass
class Testament:
    __test__ = False  # not a pytest test class

    testament_id: str
    session: str
    node: int
    added_at: float
    killed_at: float | None = None  # the session's node was killed (kill -9)
    stopped_at: float | None = None  # the session's node was SIGSTOPped
    partitioned_at: float | None = None  # the session's node was cut off from the others
    outage_at: float | None = None  # every node was stopped at once (whole-cluster restart)
    fired: set = field(default_factory=set)  # publication ids seen carrying it


@dataclass
class Fault:
    kind: str  # "kill" / "stop" / "partition" / "restart-term" / "restart-kill"
    node: int  # 0: every node (whole-cluster restart)
    start: float
    end: float | None = None  # healed + settle margin; None: never healed


def answered_twice(calls):
    return [c for c in calls
            if c.wire_answers > 1 or (c.result_call_id is not None and c.result_call_id != c.call_id)]


def never_answered(calls):
    return [c for c in calls if c.outcome is None]


def late_executions(calls, invocations):
    """[(call, invocation)] for invocations started after the caller's router ERROR."""
    by_id = {c.call_id: c for c in calls}
    out = []
    for inv in invocations:
        c = by_id.get(inv.call_id)
        if c is not None and c.outcome == "error" and c.answered_at is not None and inv.started_at > c.answered_at:
            out.append((c, inv))
    return out


def fault_at(node, t, faults, end, kind=None):
    """The fault (of `kind`, if given) on `node` (or on every node) whose window
    contains `t`, or None."""
    for f in faults:
        if f.node in (node, 0) and (kind is None or f.kind == kind) and f.start <= t <= (f.end if f.end is not None
                                                                                      else end):
            return f
    return None


def _overlaps(a0, a1, b0, b1):
    return a0 <= b1 and b0 <= a1


def in_fault(t0, t1, faults, end):
    """Whether [t0, t1] intersects a fault window (an unhealed fault lasts until `end`)."""
    return any(_overlaps(t0, t1, f.start, f.end if f.end is not None else end) for f in faults)


def owed_events(publications, subscriptions, faults, grace, end):
    """[(subscription, publication)] pairs the router owes (see the module doc)."""
    out = []
    for p in publications:
        if p.acked_at is None:
            continue
        due = p.acked_at + grace
        if due > end or in_fault(p.sent_at, due, faults, end):
            continue
        for s in subscriptions:
            if s.subscribed_at < p.sent_at and (s.gone_at is None or s.gone_at > due):
                out.append((s, p))
    return out


def lost_events(publications, subscriptions, faults, grace, end):
    return [(s, p) for s, p in owed_events(publications, subscriptions, faults, grace, end)
            if p.pub_id not in s.received]


def duplicate_events(subscriptions):
    """[(subscription, pub_id, times)] events delivered more than once to one subscription."""
    return [(s, pid, n) for s in subscriptions for pid, n in s.received.items() if n > 1]


def tenures(invocations):
    """callee -> (first start, last end) of its invocations."""
    out = {}
    for inv in invocations:
        end = inv.ended_at if inv.ended_at is not None else inv.started_at
        a, b = out.get(inv.callee, (inv.started_at, end))
        out[inv.callee] = (min(a, inv.started_at), max(b, end))
    return out


def single_overlaps(invocations, lease):
    """[(callee a, callee b, overlap seconds)] of tenures overlapping by more than `lease`."""
    ten = sorted(tenures(invocations).items(), key=lambda kv: kv[1])
    out = []
    for i, (a, (a0, a1)) in enumerate(ten):
        for b, (b0, b1) in ten[i + 1:]:
            overlap = min(a1, b1) - max(a0, b0)
            if overlap > lease:
                out.append((a, b, overlap))
    return out


def bad_testaments(testaments):
    """(fired twice or more, never fired although the node was killed)."""
    twice = [t for t in testaments if len(t.fired) > 1]
    never = [t for t in testaments if t.killed_at is not None and not t.fired]
    return twice, never


def unrestored(calls, faults, procs, end):
    """[(fault, proc)]: healed faults after which no call of `proc` issued before
    the next fault (or `end`) got a RESULT."""
    out = []
    starts = sorted(f.start for f in faults)
    for f in faults:
        if f.end is None:
            continue
        until = min([s for s in starts if s > f.end] + [end])
        for proc in procs:
            if not any(c.proc == proc and c.outcome == "result" and f.end <= c.issued_at < until for c in calls):
                out.append((f, proc))
    return out


def unrestored_events(publications, subscriptions, faults, nodes, end):
    """[(fault, node)]: healed faults after which no subscriber on `node`
    received an event published before the next fault (or `end`)."""
    out = []
    starts = sorted(f.start for f in faults)
    sent = {p.pub_id: p.sent_at for p in publications}
    for f in faults:
        if f.end is None:
            continue
        until = min([s for s in starts if s > f.end] + [end])
        for node in nodes:
            if not any(s.node == node and any(f.end <= sent.get(pid, -1.0) < until for pid in s.received)
                       for s in subscriptions):
                out.append((f, node))
    return out


def fault_label(f):
    return f"{f.kind} {'all' if f.node == 0 else f'n{f.node}'}"


def summary_rows(calls, invocations, publications, subscriptions, testaments, faults, grace, end, lease,
                 single_proc):
    """[(metric, value)] for the run's summary table."""
    outcomes = {}
    for c in calls:
        outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
    errors, closes = {}, {}
    for c in calls:
        if c.outcome == "error":
            errors[c.error] = errors.get(c.error, 0) + 1
        elif c.outcome == "session_lost":
            closes[c.error or "transport lost"] = closes.get(c.error or "transport lost", 0) + 1
    owed = owed_events(publications, subscriptions, faults, grace, end)
    twice, never = bad_testaments(testaments)
    executed = {}
    for inv in invocations:
        executed[inv.call_id] = executed.get(inv.call_id, 0) + 1
    killed = [t for t in testaments if t.killed_at is not None]
    stopped = [t for t in testaments if t.stopped_at is not None and t.killed_at is None]
    cut = [t for t in testaments if t.partitioned_at is not None and t.killed_at is None and t.stopped_at is None]
    outage = [t for t in testaments if t.outage_at is not None]
    return [
        ("faults injected", ", ".join(fault_label(f) for f in faults) or "none"),
        ("calls made", len(calls)),
        ("calls answered: result", outcomes.get("result", 0)),
        ("calls answered: router error", outcomes.get("error", 0)),
        ("router errors by URI", ", ".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none"),
        ("calls answered: caller's session lost", outcomes.get("session_lost", 0)),
        ("caller's session lost by reason", ", ".join(f"{k}={v}" for k, v in sorted(closes.items())) or "none"),
        ("calls never answered", outcomes.get(None, 0)),
        ("calls answered twice", len(answered_twice(calls))),
        ("invocations", len(invocations)),
        ("calls executed more than once", sum(1 for n in executed.values() if n > 1)),
        ("late executions (after the caller's error)", len(late_executions(calls, invocations))),
        ("`single` invocations / callee registrations",
         f"{sum(1 for i in invocations if i.proc == single_proc)} / "
         f"{len(tenures([i for i in invocations if i.proc == single_proc]))}"),
        ("`single` tenures overlapping beyond the lease",
         len(single_overlaps([i for i in invocations if i.proc == single_proc], lease))),
        ("publications (acknowledged / sent)",
         f"{sum(1 for p in publications if p.acked_at is not None)} / {len(publications)}"),
        ("subscriptions", len(subscriptions)),
        ("events received", sum(sum(s.received.values()) for s in subscriptions)),
        ("events owed (outside fault windows)", len(owed)),
        ("events lost", sum(1 for s, p in owed if p.pub_id not in s.received)),
        ("events delivered twice", len(duplicate_events(subscriptions))),
        ("testaments (killed node / SIGSTOPped node / cut-off node / whole-cluster restart / total)",
         f"{len(killed)} / {len(stopped)} / {len(cut)} / {len(outage)} / {len(testaments)}"),
        ("testaments fired (killed node / SIGSTOPped node / cut-off node / whole-cluster restart)",
         f"{sum(1 for t in killed if t.fired)} / {sum(1 for t in stopped if t.fired)} / "
         f"{sum(1 for t in cut if t.fired)} / {sum(1 for t in outage if t.fired)}"),
        ("testaments fired twice (killed node / SIGSTOPped node / other)",
         f"{sum(1 for t in twice if t.killed_at is not None)} / "
         f"{sum(1 for t in twice if t.stopped_at is not None and t.killed_at is None)} / "
         f"{sum(1 for t in twice if t.stopped_at is None and t.killed_at is None)}"),
        ("testaments never fired (killed node)", len(never)),
    ]


def markdown_table(rows):
    lines = ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)
