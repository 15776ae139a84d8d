"""docker-compose.yml and the observability configs it mounts: the compose-spec
JSON schema, Compose v2's own `config -q` (undefined services, bad merges), and
the wiring between services (OTLP endpoint, scrape targets, data sources)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from support import (
    COMPOSE_FILE,
    DEPLOY,
    ROOT,
    compose_binary,
    compose_junction_services,
    compose_model,
    load_docs,
    render,
    run,
    tool,
)


def test_compose_file_matches_the_compose_spec_schema():
    r = run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_config_is_valid():
    r = run([compose_binary(), "-f", str(COMPOSE_FILE), "config", "-q"], cwd=ROOT)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_compose_config_catches_an_undefined_service(tmp_path):
    # The check above is only worth something if Compose fails on a broken file.
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["junction-1"]["depends_on"]["junction-9"] = {"condition": "service_healthy"}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    r = run([compose_binary(), "-f", str(path), "--project-directory", str(ROOT), "config", "-q"])
    assert r.returncode != 0 and "junction-9" in r.stderr, r.stderr


def test_nodes_are_wired_to_the_collector_and_each_other():
    services = compose_model()["services"]
    nodes = compose_junction_services()
    assert sorted(nodes) == ["junction-0", "junction-1", "junction-2"]
    collector = load_docs(DEPLOY / "otel-collector.yaml")[0]
    grpc = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    for name, svc in nodes.items():
        env = svc["environment"]
        url = urlsplit(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"])
        assert url.hostname in services and url.port == int(grpc.rsplit(":", 1)[1]), name
        assert svc["healthcheck"]["test"] == ["CMD", "junction-entrypoint", "healthcheck", "/readyz"]
        assert "JUNCTION_ADMIN" not in env, "the healthcheck and Prometheus expect the template's :8090"
        for dep in svc.get("depends_on", {}):
            assert dep in services
        assert any(v["target"] == "/var/lib/junction" for v in svc["volumes"]), f"{name}: no data volume"
    # The joiners wait until the bootstrap node is ready.
    for name in ("junction-1", "junction-2"):
        assert nodes[name]["depends_on"]["junction-0"]["condition"] == "service_healthy"


def test_nodes_take_the_admin_token_from_the_host_environment_and_ship_none():
    """No token is shipped and none has to exist for `up` to work: without one the
    admin API stays closed; the operator exports JUNCTION_ADMIN_TOKEN to open it."""
    raw = (ROOT / "docker-compose.yml").read_text()
    assert "JUNCTION_ADMIN_TOKEN: ${JUNCTION_ADMIN_TOKEN:-}" in raw
    model = compose_model()
    assert "secrets" not in model, "nothing for `up` to miss"
    for name, svc in compose_junction_services().items():
        assert svc["environment"].get("JUNCTION_ADMIN_TOKEN", "") == os.environ.get("JUNCTION_ADMIN_TOKEN", ""), name
        admin = [p for p in svc["ports"] if p["target"] == 8090]
        assert admin and all(p.get("host_ip") == "127.0.0.1" for p in admin), f"{name}: admin port on loopback only"


def test_published_ports_are_unique_and_documented():
    published = []
    for svc in compose_model()["services"].values():
        published += [int(p["published"]) for p in svc.get("ports", [])]
    assert len(published) == len(set(published))
    header = COMPOSE_FILE.read_text().split("\nname:")[0]
    for port in published:
        assert str(port) in header, f"host port {port} is not documented in the header comment"


def test_bind_mounts_exist():
    for name, svc in compose_model()["services"].items():
        for v in svc.get("volumes", []):
            if v["type"] == "bind":
                assert Path(v["source"]).exists(), f"{name}: {v['source']} does not exist"


def test_prometheus_scrapes_every_node_and_the_collector():
    services = compose_model()["services"]
    prom = load_docs(DEPLOY / "prometheus.yml")[0]
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    targets = {t for j in jobs.values() for sc in j["static_configs"] for t in sc["targets"]}
    for t in targets:
        assert t.split(":")[0] in services, f"scrape target {t} is not a compose service"
    assert {f"{n}:8090" for n in compose_junction_services()} <= targets
    assert jobs["junction"].get("metrics_path", "/metrics") == "/metrics"
    # The collector's own metrics (its telemetry reader), not the nodes'.
    collector = load_docs(DEPLOY / "otel-collector.yaml")[0]
    own = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]["port"]
    assert f"otel-collector:{own}" in targets


def otlp_exports(env: dict) -> set[str]:
    """The signals junction exports over OTLP with this environment (src/ops/telemetry.rs:
    an endpoint for all or for the signal, and neither OTEL_SDK_DISABLED nor
    OTEL_<SIGNAL>_EXPORTER=none)."""
    out = set()
    if str(env.get("OTEL_SDK_DISABLED", "")).lower() == "true":
        return out
    for signal in ("TRACES", "METRICS"):
        endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
        if endpoint and str(env.get(f"OTEL_{signal}_EXPORTER", "")).lower() != "none":
            out.add(signal.lower())
    return out


def test_metrics_reach_prometheus_by_one_path_only():
    """Prometheus scrapes the nodes' /metrics; the same metrics must not also arrive
    through the collector (nodes exporting OTLP metrics, a collector metrics
    pipeline, Prometheus scraping its exporter): every series would exist twice."""
    prom = load_docs(DEPLOY / "prometheus.yml")[0]
    collector = load_docs(DEPLOY / "otel-collector.yaml")[0]
    targets = {t for j in prom["scrape_configs"] for sc in j["static_configs"] for t in sc["targets"]}
    nodes = compose_junction_services()
    direct = {f"{n}:8090" for n in nodes} <= targets
    assert direct, "Prometheus does not scrape every node's /metrics"
    # Path 2 would need all three links; none of them may exist.
    for name, svc in nodes.items():
        assert "metrics" not in otlp_exports(svc["environment"]), f"{name} exports metrics over OTLP too"
        assert "traces" in otlp_exports(svc["environment"]), f"{name} exports no traces"
    assert "metrics" not in collector["service"]["pipelines"], "the collector has a metrics pipeline"
    exporter_ports = {str(e["endpoint"]).rsplit(":", 1)[-1] for n, e in collector["exporters"].items()
                      if n.split("/")[0] == "prometheus"}
    assert not exporter_ports, "the collector exposes a Prometheus exporter"
    assert not [t for t in targets if t.startswith("otel-collector:") and t.rsplit(":", 1)[1] != "8888"], targets
    # The trace pipeline still goes to Jaeger.
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp_grpc/jaeger"]


def test_each_nodes_console_joins_its_own_node():
    """The console page at localhost:<admin port of node N> joins the WebSocket URL
    /api/console-config gives (the node's bound WebSocket address, 0.0.0.0 replaced
    by the page's host). So each node's WebSocket must listen, inside its container,
    on the port published for it on the host: otherwise nodes 2 and 3's consoles
    would join localhost:8080, node 1."""
    seen = set()
    for name, svc in compose_junction_services().items():
        env = {k: v for k, v in svc["environment"].items() if v is not None}
        listen = env.get("JUNCTION_WS") or render(env)[1]["websocket"]["listen"]
        ws_port = int(listen.rsplit(":", 1)[1])
        published = {int(p["target"]): int(p["published"]) for p in svc["ports"]}
        assert published.get(ws_port) == ws_port, (
            f"{name}: the WebSocket listens on {ws_port} in the container but the host has "
            f"{published.get(ws_port)}: its console would join another node"
        )
        admin = [p for p in svc["ports"] if int(p["target"]) == 8090]
        assert len(admin) == 1, name
        seen.add(ws_port)
    assert len(seen) == len(compose_junction_services()), "two nodes' consoles would join the same port"


def test_collector_pipelines_reference_defined_components():
    cfg = load_docs(DEPLOY / "otel-collector.yaml")[0]
    services = compose_model()["services"]
    used = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in cfg["service"]["pipelines"].items():
        for kind in used:
            for component in pipeline.get(kind, []):
                assert component in cfg[kind], f"pipeline {name}: {kind[:-1]} {component} is not defined"
                used[kind].add(component)
    for kind, names in used.items():
        assert set(cfg[kind]) == names, f"defined but unused {kind}: {set(cfg[kind]) - names}"
    assert set(cfg["service"]["extensions"]) <= set(cfg["extensions"])
    assert "traces" in cfg["service"]["pipelines"]
    jaeger = cfg["exporters"]["otlp_grpc/jaeger"]["endpoint"]
    assert jaeger.split(":")[0] in services


def test_grafana_data_sources_point_at_compose_services():
    services = compose_model()["services"]
    path = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
    sources = load_docs(path)[0]["datasources"]
    assert {s["type"] for s in sources} == {"prometheus", "jaeger"}
    for s in sources:
        assert urlsplit(s["url"]).hostname in services, s["url"]


def test_every_node_reads_the_cluster_secret_from_the_shared_volume():
    model = compose_model()
    nodes = compose_junction_services()
    sources = set()
    for name, svc in nodes.items():
        env = svc["environment"]
        secret_file = env["JUNCTION_CLUSTER_SECRET_FILE"]
        directory = secret_file.rsplit("/", 1)[0]
        mounts = [v for v in svc["volumes"] if v["target"] == directory]
        assert len(mounts) == 1 and mounts[0]["type"] == "volume", f"{name}: {svc['volumes']}"
        assert not mounts[0].get("read_only")
        sources.add(mounts[0]["source"])
        assert env["JUNCTION_CLUSTER_SECRET_CREATE"] == "true", name
        # No constant secret: empty unless the user exports one.
        assert env.get("JUNCTION_CLUSTER_SECRET", "") in ("", os.environ.get("JUNCTION_CLUSTER_SECRET", ""))
    assert len(sources) == 1, f"the nodes must share one secret volume, not {sources}"
    assert sources.pop() in model["volumes"]
    assert "secrets" not in model or not any("environment" not in s and "file" in s
                                              for s in model["secrets"].values()), "no secret file is shipped"
