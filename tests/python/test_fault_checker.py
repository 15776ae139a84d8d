# Unit tests of fault_checker.py (the cluster fault suite's checker) on small
# hand-made histories: each property holds on a clean history and is reported
# on one that violates it. No router needed.
from fault_checker import (Call, Fault, Invocation, Publication, Subscription, Testament, answered_twice,
                           duplicate_events, fault_at, late_executions, lost_events, markdown_table, never_answered,
                           owed_events, single_overlaps, summary_rows, bad_testaments, unrestored,
                           unrestored_events)


def call(cid, outcome="result", answered_at=1.0, wire=1, **kw):
    return Call(cid, "p", "caller", 1, 0.0, outcome=outcome, answered_at=answered_at, wire_answers=wire,
                result_call_id=cid if outcome == "result" else None, **kw)


def test_answered_twice_counts_wire_answers_and_foreign_results():
    ok = call("a")
    twice = call("b", wire=2)
    foreign = call("c")
    foreign.result_call_id = "x"
    error_then_result = call("d", outcome="error", wire=2)
    assert answered_twice([ok, twice, foreign, error_then_result]) == [twice, foreign, error_then_result]


def test_never_answered_is_a_call_without_outcome():
    pending = call("b", outcome=None, answered_at=None, wire=0)
    lost = call("c", outcome="session_lost", wire=0)
    assert never_answered([call("a"), pending, lost]) == [pending]


def test_late_execution_only_after_a_router_error():
    err = call("a", outcome="error", answered_at=5.0, error="wamp.error.canceled")
    lost = call("b", outcome="session_lost", answered_at=5.0, wire=0)
    ok = call("c", answered_at=5.0)
    invs = [Invocation("a", "p", "k", 2, 4.0, 4.1),  # before the error: fine
            Invocation("a", "p", "k", 2, 6.0, 6.1),  # after: late
            Invocation("b", "p", "k", 2, 6.0, 6.1),  # session lost: not judged
            Invocation("c", "p", "k", 2, 6.0, 6.1)]
    assert late_executions([err, lost, ok], invs) == [(err, invs[1])]


def test_lost_events_only_owed_outside_faults_to_live_subscribers():
    subs = [Subscription("s1", 1, subscribed_at=1.0, received={"p1": 1}),
            Subscription("late", 2, subscribed_at=2.5),  # subscribed after p1 was sent
            Subscription("gone", 3, subscribed_at=1.0, gone_at=2.2)]  # died before p1 was due
    pubs = [Publication("p1", "pub", 1, sent_at=2.0, acked_at=2.1),
            Publication("p2", "pub", 1, sent_at=5.0, acked_at=5.1),  # during the fault
            Publication("p3", "pub", 1, sent_at=7.0, acked_at=None),  # not acknowledged
            Publication("p4", "pub", 1, sent_at=8.0, acked_at=8.1),  # owed, lost by s1 and late
            Publication("p5", "pub", 1, sent_at=9.5, acked_at=9.6)]  # due after the end
    faults = [Fault("stop", 2, 4.0, 6.0)]
    owed = {(s.label, p.pub_id) for s, p in owed_events(pubs, subs, faults, grace=1.0, end=10.0)}
    assert owed == {("s1", "p1"), ("s1", "p4"), ("late", "p4")}
    lost = {(s.label, p.pub_id) for s, p in lost_events(pubs, subs, faults, grace=1.0, end=10.0)}
    assert lost == {("s1", "p4"), ("late", "p4")}
    # a fault that never healed covers everything after its start
    assert lost_events(pubs, subs, faults + [Fault("kill", 1, 7.5, None)], grace=1.0, end=10.0) == []


def test_duplicate_events():
    s = Subscription("s", 1, 0.0, received={"a": 1, "b": 2})
    assert duplicate_events([s]) == [(s, "b", 2)]


def test_single_overlap_beyond_the_lease():
    handover = [Invocation("1", "s", "owner", 2, 0.0, 0.1), Invocation("2", "s", "owner", 2, 1.0, 1.1),
                Invocation("3", "s", "standby", 1, 3.0, 3.1), Invocation("4", "s", "owner", 2, 3.5, 3.6)]
    # the frozen owner served 0.6 s into the standby's tenure: within a 2 s lease
    assert single_overlaps(handover, lease=2.0) == []
    stale = handover + [Invocation("5", "s", "owner", 2, 5.5, 5.6), Invocation("6", "s", "standby", 1, 6.0, 6.1)]
    [(a, b, overlap)] = single_overlaps(stale, lease=2.0)
    assert {a, b} == {"owner", "standby"} and abs(overlap - 2.6) < 1e-9


def test_bad_testaments():
    once = Testament("t1", "s1", 2, 0.0, killed_at=1.0, fired={10})
    twice = Testament("t2", "s2", 2, 0.0, killed_at=1.0, fired={10, 11})
    never = Testament("t3", "s3", 2, 0.0, killed_at=1.0)
    alive = Testament("t4", "s4", 1, 0.0)  # its node was not killed: not owed
    stopped_twice = Testament("t5", "s5", 3, 0.0, stopped_at=1.0, fired={12, 13})
    assert bad_testaments([once, twice, never, alive, stopped_twice]) == ([twice, stopped_twice], [never])


def test_summary_table_renders():
    rows = summary_rows([call("a")], [Invocation("a", "p", "k", 1, 0.5, 0.6)], [], [], [], [], 1.0, 2.0, 2.0, "s")
    table = markdown_table(rows)
    assert "| calls made | 1 |" in table and "| invocations | 1 |" in table


def test_fault_at_finds_the_window_of_a_node():
    faults = [Fault("kill", 1, 1.0, 2.0), Fault("stop", 2, 3.0, 4.0), Fault("stop", 3, 5.0, None)]
    assert fault_at(2, 3.5, faults, end=9.0) is faults[1]
    assert fault_at(2, 3.5, faults, end=9.0, kind="kill") is None
    assert fault_at(1, 3.5, faults, end=9.0) is None
    assert fault_at(3, 8.0, faults, end=9.0) is faults[2]  # never healed: lasts to the end


def test_fault_at_a_whole_cluster_fault_covers_every_node():
    faults = [Fault("restart-kill", 0, 1.0, 2.0)]
    assert fault_at(3, 1.5, faults, end=9.0) is faults[0]
    assert fault_at(1, 1.5, faults, end=9.0, kind="restart-kill") is faults[0]
    assert fault_at(1, 2.5, faults, end=9.0) is None


def test_unrestored_finds_a_procedure_never_served_after_a_fault():
    def c(cid, proc, issued, outcome="result"):
        return Call(cid, proc, "caller", 1, issued, outcome=outcome, answered_at=issued + 0.1, wire_answers=1)

    faults = [Fault("restart-term", 0, 1.0, 3.0), Fault("kill", 2, 5.0, 7.0), Fault("stop", 2, 9.0, None)]
    calls = [c("a", "rr", 3.5), c("b", "single", 4.0, outcome="error"),  # single not served between 3 and 5
             c("c", "single", 5.5),  # during the kill: does not count for the restart
             c("d", "rr", 7.5), c("e", "single", 8.0)]  # both served after the kill
    assert unrestored(calls, faults, ["rr", "single"], end=10.0) == [(faults[0], "single")]
    # a procedure served only after the end of the run does not count either
    assert unrestored([c("f", "rr", 11.0)], faults[1:2], ["rr"], end=10.0) == [(faults[1], "rr")]


def test_unrestored_events_finds_a_node_whose_subscribers_got_nothing_after_a_fault():
    faults = [Fault("restart-kill", 0, 1.0, 3.0), Fault("partition", 2, 5.0, 7.0)]
    pubs = [Publication("p1", "pub", 1, 3.5, 3.6), Publication("p2", "pub", 1, 7.5, 7.6),
            Publication("p3", "pub", 1, 2.0, 2.1)]  # during the restart: does not count
    subs = [Subscription("s1", 1, 3.2, received={"p1": 1, "p2": 1}),
            Subscription("s2", 2, 0.5, gone_at=1.0, received={"p3": 1}),  # node 2: not after the restart
            Subscription("s2b", 2, 7.2, received={"p2": 1})]  # back after the partition
    assert unrestored_events(pubs, subs, faults, [1, 2], end=10.0) == [(faults[0], 2)]
