"""The Kustomize variants (deploy/k8s/base and every deploy/k8s/overlays/*), as
`kubectl kustomize` renders them offline: each validates with kubernetes-validate
--strict (CRD kinds such as the PodMonitor are checked field by field instead),
and each keeps the operational rules the README states: zone spread, a
NetworkPolicy that admits only what is needed, a memory limit that holds what the
shipped [limits] admit, a termination grace period that holds the whole shutdown,
a startup probe that waits for the cluster join, volumes kept on scale-in.
Numbers the rules depend on (config defaults, timeouts) are read from the Rust
sources, so a change there is checked too."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from support import (
    COMPOSE_FILE,
    CRD_GROUPS,
    DEPLOY,
    ROOT,
    Rendered,
    compose_junction_services,
    compose_model,
    kustomize_docs,
    overlay_names,
    quantity_bytes,
    quantity_cpu,
    render,
    rust_seconds,
    setting,
    variants,
)
from test_k8s import kubernetes_validate

MiB = 1024 * 1024
README = (DEPLOY / "README.md").read_text()


@pytest.fixture(params=variants())
def rendered(request) -> Rendered:
    return Rendered(request.param)


def test_there_are_dev_and_production_overlays():
    assert {"dev", "production"} <= set(overlay_names())


@pytest.mark.parametrize("variant", variants())
def test_variant_renders_and_passes_kubernetes_validate_strict(variant, tmp_path):
    docs = kustomize_docs(variant)
    core = [d for d in docs if not d["apiVersion"].startswith(CRD_GROUPS)]
    path = tmp_path / f"{variant}.yaml"
    path.write_text("---\n".join(yaml.safe_dump(d) for d in core))
    out = kubernetes_validate([str(path)])
    passed = re.findall(r"^INFO .* passed for resource (\S+)", out, re.M)
    assert len(passed) == len(core), out
    # Every object lands in the variant's namespace (but the Namespace itself).
    r = Rendered(variant)
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {r.namespace}
    assert r.one("Namespace")["metadata"]["name"] == r.namespace
    # The Job's RoleBinding follows the namespace.
    binding = r.one("RoleBinding")
    assert all(s["namespace"] == r.namespace for s in binding["subjects"])
    # No Secret value is shipped in any variant.
    assert not r.all("Secret"), "a shipped Secret would be a known value"


# --- 1. overlays ----------------------------------------------------------------------


def test_dev_overlay_is_small_and_open(tmp_path):
    r = Rendered("dev")
    assert 1 <= r.statefulset["spec"]["replicas"] <= 3
    voters = int(r.pod_env(0)["JUNCTION_VOTERS"])
    assert voters == 3, "scaling the dev set to 3 must make the usual 3 voters"
    requests = r.container["resources"]["requests"]
    assert quantity_cpu(requests["cpu"]) <= 0.1 and quantity_bytes(requests["memory"]) <= 256 * MiB, requests
    storage = r.statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    assert quantity_bytes(storage) <= 256 * MiB
    cfg = r.config(tmp_path)
    assert "tls" not in cfg["websocket"] and "tls" not in cfg.get("rawsocket", {}) and "tls" not in cfg["cluster"]
    assert cfg["admin"]["metrics_public"] is True
    assert r.namespace == "junction-dev"


def test_production_overlay_uses_tls_auth_and_secrets(tmp_path):
    r = Rendered("production")
    cfg = r.config(tmp_path)
    secret_volumes = {v["name"]: v["secret"] for v in r.pod_spec["volumes"] if "secret" in v}

    def from_secret(path: str, secret: str) -> None:
        mount, volume = r.mounted(path)
        assert mount.get("readOnly") is True, path
        assert volume["secret"]["secretName"] == secret, (path, volume)
        assert volume["secret"].get("optional") is not True, f"{secret} must be required"
        assert path.rsplit("/", 1)[1] in [i["path"] for i in volume["secret"]["items"]], (path, volume)
        mode = volume["secret"]["defaultMode"]
        assert not mode & 0o007, f"{secret}: readable by others ({oct(mode)})"

    # Client TLS on both listeners, from Secret junction-tls.
    for listener in ("websocket", "rawsocket"):
        tls = cfg[listener]["tls"]
        from_secret(tls["cert"], "junction-tls")
        from_secret(tls["key"], "junction-tls")
    # Mutual TLS between nodes, from Secret junction-cluster-tls, on top of the secret.
    ctls = cfg["cluster"]["tls"]
    for key in ("cert", "key", "ca"):
        from_secret(ctls[key], "junction-cluster-tls")
    from_secret(r.pod_env(0)["JUNCTION_CLUSTER_SECRET_FILE"], "junction-cluster")
    # The admin token is required, and /metrics needs it.
    from_secret(r.pod_env(0)["JUNCTION_ADMIN_TOKEN_FILE"], "junction-admin")
    assert cfg["admin"]["metrics_public"] is False
    # Authentication: no anonymous realm, every ticket from Secret junction-auth, roles set.
    realms = {realm["name"]: realm for realm in cfg["realms"]}
    for name, realm in realms.items():
        auth = realm.get("auth")
        assert auth and "anonymous" not in auth, f"realm {name} admits anonymous clients"
        for principal in auth.get("ticket", {}).get("principals", {}).values():
            from_secret(principal["ticket"]["file"], "junction-auth")
    assert cfg["admin"]["realm"] in realms, "the admin realm must exist"
    app = [realm for n, realm in realms.items() if n != cfg["admin"]["realm"]]
    assert app and all(realm.get("roles") for realm in app), "application realms need roles"
    roles = {role["name"] for realm in app for role in realm["roles"]}
    for realm in app:
        for principal in realm["auth"]["ticket"]["principals"].values():
            assert principal["role"] in roles, principal
    # Every Secret item the pods mount is read by the config (nothing mounted for nothing).
    used = {v for v in [*[cfg[x]["tls"][k] for x in ("websocket", "rawsocket") for k in ("cert", "key")],
                        *ctls.values()]}
    used |= {p["ticket"]["file"] for realm in realms.values()
             for p in realm["auth"].get("ticket", {}).get("principals", {}).values()}
    for name in ("client-tls", "cluster-tls", "auth"):
        mount = next(m for m in r.container["volumeMounts"] if m["name"] == name)
        for item in secret_volumes[name]["items"]:
            assert f"{mount['mountPath']}/{item['path']}" in used, f"{name}: {item} is mounted but not used"
    # Prometheus scrapes through the PodMonitor: no annotations promising an open /metrics.
    assert not r.statefulset["spec"]["template"]["metadata"].get("annotations")
    # Same listeners and limits as the base (the memory and shutdown rules hold for both).
    base = Rendered("base").config(tmp_path)
    assert cfg["limits"] == base["limits"]
    for listener in ("websocket", "rawsocket", "admin"):
        assert cfg[listener]["listen"] == base[listener]["listen"]


# --- 2. PodMonitor ----------------------------------------------------------------------


def test_production_podmonitor_scrapes_the_admin_port_with_the_admin_token():
    r = Rendered("production")
    pm = r.one("PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["metadata"]["namespace"] == r.namespace
    spec = pm["spec"]
    assert set(spec) <= {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel", "podTargetLabels"}, spec
    assert spec["selector"]["matchLabels"].items() <= r.pod_labels.items(), "selects no Junction pod"
    assert len(spec["podMetricsEndpoints"]) == 1
    ep = spec["podMetricsEndpoints"][0]
    assert set(ep) <= {"port", "path", "scheme", "interval", "scrapeTimeout", "authorization", "honorLabels",
                       "relabelings", "metricRelabelings"}, ep
    ports = {p["name"]: p["containerPort"] for p in r.container["ports"]}
    assert ep["port"] == "admin" and ports["admin"] == 8090
    assert ep.get("path", "/metrics") == "/metrics" and ep.get("scheme", "http") == "http"
    assert re.fullmatch(r"[0-9]+[smh]", ep["interval"]), ep["interval"]
    # The bearer token: the same Secret key the pods read as their admin token.
    auth = ep["authorization"]
    assert auth.get("type", "Bearer") == "Bearer" and set(auth) <= {"type", "credentials"}
    _, volume = r.mounted(r.pod_env(0)["JUNCTION_ADMIN_TOKEN_FILE"])
    token_key = next(i["key"] for i in volume["secret"]["items"]
                     if i["path"] == r.pod_env(0)["JUNCTION_ADMIN_TOKEN_FILE"].rsplit("/", 1)[1])
    assert auth["credentials"] == {"name": volume["secret"]["secretName"], "key": token_key}
    # Only CRDs of the Prometheus Operator are not validated by kubernetes-validate.
    crds = [d for d in kustomize_docs("production") if d["apiVersion"].startswith(CRD_GROUPS)]
    assert [d["kind"] for d in crds] == ["PodMonitor"]


# --- 3. topology spread -----------------------------------------------------------------


def test_pods_spread_over_zones_and_machines(rendered):
    constraints = {c["topologyKey"]: c for c in rendered.pod_spec["topologySpreadConstraints"]}
    assert set(constraints) == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for c in constraints.values():
        assert c["whenUnsatisfiable"] == "ScheduleAnyway", "a cluster with one zone must still schedule"
        assert c["maxSkew"] == 1
        assert c["labelSelector"]["matchLabels"].items() <= rendered.pod_labels.items()


# --- 4. NetworkPolicy -------------------------------------------------------------------


def test_network_policy_admits_only_what_is_needed(rendered):
    policy = rendered.one("NetworkPolicy")
    spec = policy["spec"]
    assert spec["podSelector"]["matchLabels"].items() <= rendered.pod_labels.items()
    assert spec["policyTypes"] == ["Ingress"]
    ports = {p["name"]: p["containerPort"] for p in rendered.container["ports"]}
    rules: dict[str, list] = {}
    for rule in spec["ingress"]:
        for p in rule["ports"]:
            name = p["port"] if isinstance(p["port"], str) else {v: k for k, v in ports.items()}[p["port"]]
            assert name not in rules, f"port {name} in two rules"
            assert p.get("protocol", "TCP") == "TCP"
            rules[name] = rule.get("from")
    assert set(rules) == set(ports), f"every port the pod listens on has exactly one rule: {rules}"
    # Clients: from anywhere.
    assert rules["ws"] is None and rules["rawsocket"] is None
    # Cluster gRPC: other Junction pods only (podSelector alone: this namespace).
    assert rules["grpc"] and all(s.keys() == {"podSelector"} for s in rules["grpc"])
    assert all(s["podSelector"]["matchLabels"].items() <= rendered.pod_labels.items() for s in rules["grpc"])
    # Admin (/metrics, /api, /console): Prometheus in the monitoring namespace only,
    # both selectors in one peer (an AND); the dev overlay opens it.
    if rendered.variant == "dev":
        assert rules["admin"] is None
    else:
        assert rules["admin"] and len(rules["admin"]) == 1
        peer = rules["admin"][0]
        assert peer.keys() == {"namespaceSelector", "podSelector"}, peer
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}


# --- 5. memory sizing -------------------------------------------------------------------

# The sizing rule of deploy/README.md ("Memory sizing"); estimates, not measurements.
BASE_BYTES = 128 * MiB          # runtime, Raft state, links, buffers of idle listeners
SESSION_BYTES = 16 * 1024       # one joined session (~15 KiB), queues empty
SLOW_SESSIONS = 64              # sessions whose outbound queue is full at the same time
MESSAGES_IN_FLIGHT = 16         # largest messages being decoded / routed at once
BYTES_PER_ELEMENT = 32          # one decoded value (README, max_message_elements)
HEADROOM = 0.85                 # the estimate may use 85 % of the limit


def memory_estimate(cfg: dict) -> dict[str, int]:
    sessions = setting(cfg, "limits", "max_sessions")
    assert sessions > 0, "max_sessions = 0 (no limit) admits unbounded memory"
    largest = max(setting(cfg, "limits", "max_message_size"),
                  cfg.get("limits", {}).get("websocket_max_message_size") or 0,
                  cfg.get("limits", {}).get("rawsocket_max_message_size") or 0)
    history_entries = sum(len(r.get("history", [])) for r in cfg["realms"])
    return {
        "base": BASE_BYTES,
        "sessions": sessions * SESSION_BYTES,
        "slow sessions' queues": SLOW_SESSIONS * setting(cfg, "limits", "outbox_bytes"),
        "retained events": len(cfg["realms"]) * setting(cfg, "limits", "max_retained_bytes"),
        "event history": history_entries * setting(cfg, "limits", "max_history_bytes"),
        "messages in flight": MESSAGES_IN_FLIGHT * (
            largest + setting(cfg, "limits", "max_message_elements") * BYTES_PER_ELEMENT),
    }


def test_memory_limit_holds_what_the_shipped_limits_admit(rendered, tmp_path):
    cfg = rendered.config(tmp_path)
    resources = rendered.container["resources"]
    limit = quantity_bytes(resources["limits"]["memory"])
    request = quantity_bytes(resources["requests"]["memory"])
    assert request <= limit
    estimate = memory_estimate(cfg)
    total = sum(estimate.values())
    detail = ", ".join(f"{k} {v / MiB:.0f} MiB" for k, v in estimate.items())
    assert total <= HEADROOM * limit, (
        f"{rendered.variant}: the shipped [limits] admit ~{total / MiB:.0f} MiB ({detail}), "
        f"over {HEADROOM:.0%} of the pod's {limit / MiB:.0f} MiB limit"
    )
    # The outbox must hold one largest message (junction refuses the config otherwise).
    assert setting(cfg, "limits", "outbox_bytes") >= setting(cfg, "limits", "max_message_size")


def test_memory_estimate_would_catch_the_defaults():
    """The check above is worth something: junction's defaults (100,000 sessions,
    64 MiB outboxes) do not fit a 1 GiB pod."""
    defaults = {"realms": [{"name": "realm1"}]}
    assert sum(memory_estimate(defaults).values()) > 1024 * MiB


def test_readme_states_the_memory_rule():
    section = README[README.index("### Memory sizing"):]
    section = section[: section.index("\n### ", 5)]
    for term in ("max_sessions", "outbox_bytes", "max_message_size", "max_retained_bytes", "16 KiB", "64",
                 "85 %"):
        assert term in section, f"deploy/README.md Memory sizing does not mention {term}"


# --- 6. shutdown budget -----------------------------------------------------------------


def shutdown_budget(cfg: dict, env: dict, pre_stop: float) -> dict[str, float]:
    """Seconds from the kubelet's TERM decision to junction's exit, worst case
    without a stuck client (src/main.rs's shutdown sequence)."""
    main = (ROOT / "src" / "main.rs").read_text()
    m = re.search(r"cfg\.limits\.shutdown_grace_ms \+ ([0-9]+)", main)
    assert m, "src/main.rs: the GOODBYE wait changed; update the budget"
    flush = rust_seconds(ROOT / "src" / "ops" / "telemetry.rs", r"const SHUTDOWN_TIMEOUT")
    from test_compose import otlp_exports
    return {
        "preStop": pre_stop,
        "drain_delay_ms": setting(cfg, "admin", "drain_delay_ms") / 1000,
        # withdrawing this node's registrations through Raft (one proposal's timeout)
        "registrations withdrawn": setting(cfg, "cluster", "propose_timeout_ms") / 1000,
        "drain_timeout_ms": setting(cfg, "limits", "drain_timeout_ms") / 1000,
        "shutdown_grace_ms": (setting(cfg, "limits", "shutdown_grace_ms") + int(m.group(1))) / 1000,
        "leaving Raft": rust_seconds(ROOT / "src" / "ops" / "shutdown.rs", r"pub const LEAVE"),
        "OTLP flush": flush * len(otlp_exports(env)),
    }


MARGIN_S = 5


def test_termination_grace_period_holds_the_shutdown(rendered, tmp_path):
    cfg = rendered.config(tmp_path)
    pre_stop = rendered.container["lifecycle"]["preStop"]["sleep"]["seconds"]
    budget = shutdown_budget(cfg, rendered.pod_env(0), pre_stop)
    period = rendered.pod_spec["terminationGracePeriodSeconds"]
    detail = " + ".join(f"{k} {v:g}" for k, v in budget.items())
    assert sum(budget.values()) + MARGIN_S <= period, (
        f"{rendered.variant}: {detail} = {sum(budget.values()):g} s (+{MARGIN_S} s margin) > "
        f"terminationGracePeriodSeconds {period}"
    )
    assert budget["OTLP flush"] > 0, "the pods export traces: their flush is part of the budget"


def test_compose_stop_grace_period_holds_the_shutdown():
    for name, svc in compose_junction_services().items():
        env = {k: v for k, v in svc["environment"].items() if v is not None}
        cfg = render(env)[1]
        budget = shutdown_budget(cfg, env, 0)
        grace = svc["stop_grace_period"]
        seconds = int(re.fullmatch(r"([0-9]+)s", grace).group(1)) if isinstance(grace, str) else grace / 1e9
        assert sum(budget.values()) + MARGIN_S <= seconds, (name, budget, grace)


def test_readme_states_the_shutdown_budget():
    section = README[README.index("### Shutdown budget"):]
    section = section[: section.index("\n### ", 5)]
    for term in ("preStop", "drain_timeout_ms", "shutdown_grace_ms", "propose_timeout_ms", "OTLP",
                 "terminationGracePeriodSeconds", "stop_grace_period"):
        assert term in section, f"deploy/README.md Shutdown budget does not mention {term}"


# --- 7. startup probe -------------------------------------------------------------------


def test_startup_probe_waits_for_the_cluster_join(rendered, tmp_path):
    c = rendered.container
    probe = c["startupProbe"]
    assert probe["httpGet"]["path"] == "/readyz", "started means joined, not merely running (/healthz)"
    assert probe["httpGet"]["port"] in ("admin", 8090)
    window = probe["periodSeconds"] * probe["failureThreshold"]
    join = setting(rendered.config(tmp_path), "cluster", "join_timeout_ms") / 1000
    assert window >= max(120, 2 * join), f"startup window {window} s: too short to join (join_timeout {join} s)"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"


# --- 8. volumes on scale-in -------------------------------------------------------------


def test_scale_in_keeps_the_raft_state(rendered):
    policy = rendered.statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy == {"whenScaled": "Retain", "whenDeleted": "Retain"}, (
        "whenScaled: Delete discards a removed node's Raft state (roles changed at run time, membership)"
    )


def test_readme_documents_scale_in():
    section = README[README.index("### Scaling in"):]
    section = section[: section.index("\n## ", 5)]
    for term in ("forget_after_ms", "cluster transfer-leader", "cluster remove", "whenScaled",
                 "Retain", "data-junction-"):
        assert term in section, f"deploy/README.md Scaling in does not mention {term}"


# --- 9. Grafana dashboard ----------------------------------------------------------------

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "junction.json"


def exported_metric_names() -> set[str]:
    """Names src/observe/metrics.rs exposes on /metrics: gauges as registered,
    counters with _total, histograms with _bucket/_sum/_count."""
    src = (ROOT / "src" / "observe" / "metrics.rs").read_text()
    fields = dict(re.findall(r"pub (\w+): ([\w<>]+),", src))
    locals_ = dict(re.findall(r"let (\w+) = (Labeled::<\w+>)::default\(\)", src))
    names = set()
    for name, arg in re.findall(r'r\.register\(\s*"(junction_\w+)",\s*"[^"]*",\s*([\w.]+)', src):
        var = arg.removesuffix(".clone").split(".")[-1]
        kind = fields.get(var) or locals_.get(var)
        assert kind, f"cannot tell the type of {name} ({arg})"
        if "Counter" in kind:
            names.add(f"{name}_total")
        elif "Histogram" in kind:
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            out.append((f"variable {v['name']}", v["definition"]))
    return out


def test_metric_names_are_read_from_the_source():
    names = exported_metric_names()
    assert {"junction_sessions", "junction_messages_received_total", "junction_call_duration_seconds_bucket",
            "junction_raft_term", "junction_link_gaps_total"} <= names, names
    assert "junction_sessions_total" not in names and "junction_raft_term_total" not in names


def test_dashboard_queries_name_only_metrics_that_exist():
    names = exported_metric_names()
    for title, expr in dashboard_exprs():
        used = set(re.findall(r"\bjunction_[a-z_]+", expr))
        assert used, f"{title}: {expr} queries no Junction metric"
        assert used <= names, f"{title}: {sorted(used - names)} do not exist in src/observe/metrics.rs"


def test_dashboard_has_the_on_call_panels():
    dash = json.loads(DASHBOARD.read_text())
    used = {m for _, e in dashboard_exprs() for m in re.findall(r"\bjunction_[a-z_]+", e)}
    for metric in ("junction_sessions", "junction_messages_received_total", "junction_messages_sent_total",
                   "junction_call_duration_seconds_bucket", "junction_events_delivered_total",
                   "junction_events_dropped_total", "junction_outbound_queue_bytes",
                   "junction_slow_consumer_disconnects_total", "junction_auth_failures_total",
                   "junction_raft_leader_id", "junction_raft_term", "junction_raft_commit_index",
                   "junction_raft_applied_index", "junction_link_up", "junction_link_frames_dropped_total",
                   "junction_link_gaps_total", "junction_ready", "junction_draining"):
        assert metric in used, f"no panel shows {metric}"
    exprs = " ".join(e for _, e in dashboard_exprs())
    for q in ("0.5", "0.99"):
        assert f"histogram_quantile({q}, " in exprs, f"no p{q} call latency"
    # A well-formed dashboard: unique panel ids, a layout, the data source as a variable.
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    assert any(v["type"] == "datasource" and v["query"] == "prometheus" for v in dash["templating"]["list"])
    for p in dash["panels"]:
        assert {"h", "w", "x", "y"} <= p["gridPos"].keys() and p["gridPos"]["x"] + p["gridPos"]["w"] <= 24
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            assert p["targets"] and all(t["refId"] for t in p["targets"])


def test_compose_provisions_the_dashboard():
    grafana = compose_model()["services"]["grafana"]
    mounts = {v["target"]: v for v in grafana["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    providers_file = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml"
    assert str(providers_file).startswith(provisioning["source"]), provisioning
    providers = yaml.safe_load(providers_file.read_text())["providers"]
    assert len(providers) == 1 and providers[0]["type"] == "file"
    path = providers[0]["options"]["path"]
    assert path in mounts, f"the dashboard provider reads {path}, which compose does not mount"
    assert mounts[path]["source"] == str(DASHBOARD.parent) and mounts[path].get("read_only") is True
    assert COMPOSE_FILE.exists()


def test_production_ships_the_dashboard_as_a_configmap():
    r = Rendered("production")
    maps = [cm for cm in r.all("ConfigMap") if cm["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(maps) == 1
    assert maps[0]["data"] == {"junction.json": DASHBOARD.read_text()}, "not the file compose provisions"
    json.loads(maps[0]["data"]["junction.json"])

