# The scaling model (bench/model.py, issue #17): how it prices a cross-node call, and
# that the validation committed in bench/results/ is what docs/scaling.md says it is
# with the committed costs.json. Stdlib only: no router runs here.
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

import model  # noqa: E402

COSTS = REPO_ROOT / "bench" / "results" / "costs.json"


def constants():
    _, k = model.load(str(COSTS))
    return dict(k)


def test_a_cross_node_call_is_priced_by_the_ring_cost_when_the_costs_have_it():
    k = constants()
    assert "cpu_call_cross_ring_us" in k
    m = model.Model(k, cores=0.1)
    per_call, link = m.call_cost(3, cross=1.0)
    assert per_call == k["cpu_call_cross_ring_us"] * 1e-6
    assert link == per_call - k["cpu_call_same_node_us"] * 1e-6
    rate = m.calls(3, cross=1.0)["rate"]
    assert abs(rate - 3 * m.avail(3) / per_call) < 1e-6 * rate


def test_costs_without_the_ring_price_a_cross_node_call_as_caller_plus_callee():
    k = constants()
    del k["cpu_call_cross_ring_us"]
    per_call, _ = model.Model(k, cores=0.1).call_cost(5, cross=1.0)
    want = (k["cpu_call_cross_caller_us"] + k["cpu_call_cross_callee_us"]) * 1e-6
    assert abs(per_call - want) < 1e-12


def test_random_calls_mix_same_node_and_ring_costs_by_the_share_that_crosses():
    k = constants()
    m = model.Model(k, cores=1.0)
    per_call, _ = m.call_cost(5, cross=0.8)
    want = (0.2 * k["cpu_call_same_node_us"] + 0.8 * k["cpu_call_cross_ring_us"]) * 1e-6
    assert abs(per_call - want) < 1e-12


def test_the_model_script_predicts_every_size_up_to_fifty_and_names_a_limit():
    out = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "model.py"), "--json", "--all"],
                         capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)["rows"]
    assert [r["n"] for r in rows] == list(range(1, 51))
    for r in rows:
        for workload in ("calls", "deliveries", "subscribes", "registers"):
            assert r[workload]["rate"] > 0, (r["n"], workload)
            assert r[workload]["limit"], (r["n"], workload)


def test_the_committed_validation_is_within_tolerance_of_the_committed_model():
    # docs/scaling.md: "18 of 18 rows within ±25 %" for scaling-ring against costs.json
    env = dict(os.environ, COSTS=str(COSTS), REEVAL=str(REPO_ROOT / "bench" / "results" / "scaling-ring.jsonl"))
    out = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "scale" / "scaling.py")],
                         capture_output=True, text=True, check=True, env=env, cwd=REPO_ROOT).stdout
    assert "| | within ±25% | 18 of 18 |" in out, out
