"""Runs what the containers run, as local processes: the image's ENTRYPOINT/CMD
combined with the StatefulSet's (or compose service's) command, args and
environment, exactly as Kubernetes and Compose combine them, with the image's
files mapped to the repository's (junction-entrypoint -> deploy/entrypoint.sh,
junction -> target/debug/junction) and the mounted paths to a temp dir.

Only what cannot work on one machine is changed: listeners bind 127.0.0.1 on
free ports (the binary's own JUNCTION_WS / JUNCTION_RAWSOCKET / JUNCTION_ADMIN
variables and the entrypoint's JUNCTION_GRPC_LISTEN), and in the cluster
test the pods' DNS names are replaced by those 127.0.0.1 addresses after the
entrypoint has derived them.

The admin token the manifests mount from a secret (JUNCTION_ADMIN_TOKEN_FILE)
is a file under the temp dir holding ADMIN_TOKEN.

Config sections the binary does not implement yet ([admin], and [cluster]
until the router starts it) are stripped from the template for the basic run,
and the tests that need them are skipped with the reason."""

from __future__ import annotations

import functools
import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support import (
    ENTRYPOINT,
    PLANNED_SECTIONS,
    ROOT,
    TEMPLATE,
    compose_junction_services,
    configmap_template,
    container,
    free_port,
    image_copies,
    image_entrypoint_cmd,
    junction_bin,
    pod_env,
    render,
    run,
)

# The value of Secret junction-cluster for the Kubernetes pods run here (in a real
# cluster the Job in deploy/k8s/base/cluster-secret.yaml generates it).
K8S_CLUSTER_SECRET = secrets.token_hex(32)

READY_TIMEOUT = 60.0
ADMIN_TOKEN = "deploy-test-admin-token-3b8e5f"
CLUSTER_READY_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0


# --- what the binary supports ---------------------------------------------------


@functools.cache
def unsupported_sections() -> dict[str, str]:
    """Planned sections the binary rejects, with its error line."""
    out = {}
    probe_dir = ROOT / "target" / "deploy-probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    for name in PLANNED_SECTIONS:
        path = probe_dir / f"{name}.toml"
        path.write_text(f"[{name}]\njunction_deploy_probe = 1\n")
        p = subprocess.Popen(
            [str(junction_bin()), "--config", str(path), "--ws", "", "--rawsocket", ""],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            _, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:  # it started: the section is accepted as is
            p.kill()
            p.communicate()
            continue
        if re.search(rf"unknown field `{name}`", err):
            out[name] = next((line for line in err.splitlines() if f"`{name}`" in line), err.strip())
    return out


def strip_sections(text: str, names) -> str:
    """Remove TOML tables [name] / [name.x] / [[name]] and their keys."""
    out, skipping = [], False
    for line in text.splitlines(keepends=True):
        m = re.match(r"^\s*\[\[?\s*([A-Za-z0-9_-]+)", line)
        if m:
            skipping = m.group(1) in names
        if not skipping:
            out.append(line)
    return "".join(out)


# --- processes --------------------------------------------------------------------


class Proc:
    """A started container command: stdout lines collected, `ready` awaited."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: Path):
        self.name = name
        self.argv = argv
        self.stderr_path = cwd / f"{name}.stderr"
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.p = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=open(self.stderr_path, "w"), text=True
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_ready(self, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.p.poll() is not None:
                    break
                continue
            self.stdout.append(line)
            if line.strip() == "ready":
                return
        state = f"exited with {self.p.returncode}" if self.p.poll() is not None else f"not ready after {timeout}s"
        pytest.fail(f"{self.name} {state}\nargv: {self.argv}\nstdout: {self.stdout}\nstderr:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text()[-4000:]

    def stop(self) -> int | None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)  # what the kubelet / docker stop sends
            try:
                self.p.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return None
        return self.p.returncode


@pytest.fixture
def procs():
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


def image_bin_dir(tmp: Path) -> Path:
    """A directory standing in for the image's /usr/local/bin (put first on PATH)."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    for dest, src in image_copies().items():
        if dest.startswith("/usr/local/bin/"):
            (bindir / dest.rsplit("/", 1)[1]).symlink_to(ROOT / src)
    (bindir / "junction").symlink_to(junction_bin())
    return bindir


def entrypoint_default(name: str) -> str:
    m = re.search(rf"{name}:-([^}}]+)}}", ENTRYPOINT.read_text())
    assert m, f"deploy/entrypoint.sh has no default for {name}"
    return m.group(1)


def container_argv(command: list[str] | None, args: list[str] | None) -> list[str]:
    """Kubernetes/Compose semantics: command replaces ENTRYPOINT (and drops CMD); args replace CMD."""
    entrypoint, cmd = image_entrypoint_cmd()
    if command:
        return list(command) + list(args or [])
    return entrypoint + (list(args) if args is not None else cmd)


def local_env(env: dict[str, str], tmp: Path, template_text: str, **overrides: str) -> dict[str, str]:
    """The container env with image paths mapped under `tmp` and loopback listeners."""
    out = {k: v for k, v in env.items() if v is not None}
    out["PATH"] = f"{image_bin_dir(tmp)}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    for key in ("JUNCTION_CONFIG_TEMPLATE", "JUNCTION_RENDERED_CONFIG", "JUNCTION_DATA_DIR",
                "JUNCTION_CLUSTER_SECRET_FILE"):
        if key == "JUNCTION_CLUSTER_SECRET_FILE" and key not in out:
            continue
        image_path = out[key] if key in out else entrypoint_default(key)
        local = tmp / "fs" / image_path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        out[key] = str(local)
    if "JUNCTION_ADMIN_TOKEN_FILE" in out:  # the mounted junction-admin secret
        token = tmp / "fs" / out["JUNCTION_ADMIN_TOKEN_FILE"].lstrip("/")
        token.parent.mkdir(parents=True, exist_ok=True)
        token.write_text(ADMIN_TOKEN + "\n")
        out["JUNCTION_ADMIN_TOKEN_FILE"] = str(token)
    Path(out["JUNCTION_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    Path(out["JUNCTION_CONFIG_TEMPLATE"]).write_text(strip_sections(template_text, unsupported_sections()))
    out.update(
        JUNCTION_WS="127.0.0.1:0",
        JUNCTION_RAWSOCKET="127.0.0.1:0",
        JUNCTION_GRPC_LISTEN=f"127.0.0.1:{free_port()}",
        JUNCTION_ADMIN=f"127.0.0.1:{free_port()}",
    )
    out.update(overrides)
    return out


def listening(addr: str) -> bool:
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def http_get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def wait_admin_ready(env: dict[str, str], timeout: float = 15) -> None:
    """Until GET /readyz answers 200 (no-op without an admin server).

    Also lets the process reach its signal handler: `ready` is printed just before
    junction installs its SIGTERM handler, so a SIGTERM sent at once can still kill
    it the default way (exit by signal) instead of draining."""
    if "admin" in unsupported_sections():
        time.sleep(0.5)
        return
    deadline = time.monotonic() + timeout
    while http_get(f"http://{env['JUNCTION_ADMIN']}/readyz")[0] != 200:
        assert time.monotonic() < deadline, f"/readyz did not answer 200 within {timeout}s"
        time.sleep(0.1)
    time.sleep(0.2)


def mount_cluster_secret(env: dict[str, str], value: str = K8S_CLUSTER_SECRET) -> None:
    """What the kubelet does with the StatefulSet's Secret volume: the key's value
    in the file JUNCTION_CLUSTER_SECRET_FILE names (mapped under the pod's dir)."""
    path = Path(env["JUNCTION_CLUSTER_SECRET_FILE"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value)


def start_pod(procs, tmp: Path, ordinal: int, secret: bool = True, **overrides: str) -> tuple[Proc, dict[str, str]]:
    c = container()
    pod_dir = tmp / f"pod-{ordinal}"
    pod_dir.mkdir()
    env = local_env(pod_env(ordinal), pod_dir, configmap_template(), **overrides)
    if secret:
        mount_cluster_secret(env)
    proc = Proc(f"junction-{ordinal}", container_argv(c.get("command"), c.get("args")), env, pod_dir)
    procs.append(proc)
    return proc, env


# --- tests ------------------------------------------------------------------------


def test_statefulset_pod_command_runs(procs, tmp_path):
    """junction-0's container command with its pod env and the ConfigMap template."""
    proc, env = start_pod(procs, tmp_path, 0)
    proc.wait_ready(READY_TIMEOUT)
    wait_admin_ready(env)
    assert proc.argv[0] == "junction-entrypoint" and "--log-json" in proc.argv
    rendered = Path(env["JUNCTION_RENDERED_CONFIG"]).read_text()
    assert 'name = "realm1"' in rendered
    listeners = [line for line in proc.stdout if line.startswith("listening")]
    assert any("ws://127.0.0.1:" in line for line in listeners), proc.stdout
    assert proc.stop() == 0, f"junction did not exit cleanly on SIGTERM:\n{proc.stderr()}"


def test_statefulset_pod_reloads_its_config_when_the_mounted_template_changes(procs, tmp_path):
    """A ConfigMap update replaces the mounted template (kubelet: a new file swapped
    in): junction reads the template itself, placeholders and all, so it re-reads
    it and applies what can change at run time, without a restart."""
    proc, env = start_pod(procs, tmp_path, 0)
    proc.wait_ready(READY_TIMEOUT)
    wait_admin_ready(env)
    template = Path(env["JUNCTION_CONFIG_TEMPLATE"])
    new = template.with_name(template.name + ".new")
    new.write_text(template.read_text() + "\n# edited: a new ConfigMap version\n")
    new.replace(template)
    deadline = time.monotonic() + 20
    while "configuration reloaded" not in proc.stderr_path.read_text():
        assert proc.p.poll() is None, f"junction exited:\n{proc.stderr()}"
        assert time.monotonic() < deadline, f"no reload after the template changed:\n{proc.stderr()}"
        time.sleep(0.1)
    log = proc.stderr_path.read_text()
    assert "file changed" in log and "realm realm1: authentication and roles" in log, log[-2000:]
    assert proc.stop() == 0, f"junction did not exit cleanly on SIGTERM:\n{proc.stderr()}"


def test_statefulset_pod_refuses_a_reachable_cluster_port_without_the_secret(tmp_path):
    """The shipped pod command on its shipped cluster.listen (0.0.0.0): without the
    mounted Secret it exits 2 with one line saying why, before binding anything."""
    listen = f"0.0.0.0:{free_port()}"
    for case in ("secret not mounted", "no secret variable"):
        pod_dir = tmp_path / case.replace(" ", "-")
        pod_dir.mkdir()
        env = local_env(pod_env(0), pod_dir, configmap_template(), JUNCTION_GRPC_LISTEN=listen)
        if case == "no secret variable":
            del env["JUNCTION_CLUSTER_SECRET_FILE"]
        c = container()
        r = run(container_argv(c.get("command"), c.get("args")), env=env, cwd=pod_dir, timeout=30)
        junction_lines = [line for line in r.stderr.splitlines() if line.startswith("junction:")]
        assert r.returncode == 2, f"{case}: exit {r.returncode}\n{r.stderr}"
        assert len(junction_lines) == 1, f"{case}: {r.stderr}"
        assert f"cluster.listen {listen} is reachable from other hosts" in junction_lines[0], junction_lines
        assert "JUNCTION_CLUSTER_SECRET" in junction_lines[0], junction_lines
        assert "ready" not in r.stdout


def test_statefulset_pod_with_its_secret_passes_the_startup_check_on_0_0_0_0(tmp_path):
    """The same command with the Secret mounted gets past the configuration: it then
    stops at the next step, the admin port (held here, so nothing binds 0.0.0.0)."""
    c = container()
    env = local_env(pod_env(0), tmp_path, configmap_template(), JUNCTION_GRPC_LISTEN=f"0.0.0.0:{free_port()}")
    mount_cluster_secret(env)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        env["JUNCTION_ADMIN"] = "127.0.0.1:%d" % held.getsockname()[1]
        r = run(container_argv(c.get("command"), c.get("args")), env=env, cwd=tmp_path, timeout=30)
    assert r.returncode == 1 and "cannot listen for admin HTTP" in r.stderr, (r.returncode, r.stderr)
    assert "reachable from other hosts" not in r.stderr and "invalid configuration" not in r.stderr


def test_compose_node_refuses_a_reachable_cluster_port_without_its_secret_volume(tmp_path):
    """Compose's node command where the shared secret volume is missing (not
    writable): no secret is made up, and junction refuses 0.0.0.0 (exit 2)."""
    name, svc = sorted(compose_junction_services().items())[0]
    listen = f"0.0.0.0:{free_port()}"
    env = local_env(svc["environment"], tmp_path, TEMPLATE.read_text(), JUNCTION_GRPC_LISTEN=listen)
    env["JUNCTION_CLUSTER_SECRET_FILE"] = str(tmp_path / "no-such-volume" / "secret")
    r = run(container_argv(svc.get("entrypoint"), svc.get("command")), env=env, cwd=tmp_path, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "reachable from other hosts" in r.stderr and "ready" not in r.stdout, r.stderr
    assert not (tmp_path / "no-such-volume").exists()


def test_entrypoint_creates_the_compose_cluster_secret_once(tmp_path):
    """Compose's nodes share one volume: the first start writes a random secret,
    later starts (any node) keep it."""
    name, svc = sorted(compose_junction_services().items())[0]
    env = local_env(svc["environment"], tmp_path, TEMPLATE.read_text())
    env["JUNCTION_BIN"] = "true"  # only the entrypoint's work is checked here
    secret_file = Path(env["JUNCTION_CLUSTER_SECRET_FILE"])
    assert not secret_file.exists()
    argv = container_argv(svc.get("entrypoint"), svc.get("command"))
    assert run(argv, env=env, cwd=tmp_path).returncode == 0
    first = secret_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", first), first
    assert secret_file.stat().st_mode & 0o077 == 0, "readable by the node's user only"
    assert run(argv, env=env, cwd=tmp_path).returncode == 0
    assert secret_file.read_text().strip() == first, "a restart must not replace the secret"
    other = tmp_path / "other"
    other.mkdir()
    env2 = local_env(svc["environment"], other, TEMPLATE.read_text(), JUNCTION_BIN="true")
    run(argv, env=env2, cwd=other)
    assert Path(env2["JUNCTION_CLUSTER_SECRET_FILE"]).read_text().strip() != first, "not a constant"


def test_compose_node_command_runs(procs, tmp_path):
    """compose's junction-0 (the bootstrap node) with its resolved environment."""
    name, svc = sorted(compose_junction_services().items())[0]
    env = local_env(svc["environment"], tmp_path, TEMPLATE.read_text())
    proc = Proc(name, container_argv(svc.get("entrypoint"), svc.get("command")), env, tmp_path)
    procs.append(proc)
    proc.wait_ready(READY_TIMEOUT)
    wait_admin_ready(env)
    assert proc.stop() == 0, proc.stderr()


def test_admin_port_answers_the_probes(procs, tmp_path):
    if "admin" in unsupported_sections():
        pytest.skip(
            "the binary has no [admin] section yet (" + unsupported_sections()["admin"] + "): the "
            "StatefulSet's probes (GET /healthz, /readyz on :8090), the Docker HEALTHCHECK and "
            "Prometheus' /metrics scrape have nothing to answer them"
        )
    proc, env = start_pod(procs, tmp_path, 0)
    proc.wait_ready(READY_TIMEOUT)
    base = f"http://{env['JUNCTION_ADMIN']}"
    assert http_get(base + "/healthz")[0] == 200
    deadline = time.monotonic() + 15
    while http_get(base + "/readyz")[0] != 200:
        assert time.monotonic() < deadline, "/readyz never answered 200 on a bootstrapped node"
        time.sleep(0.2)
    status, body = http_get(base + "/metrics")  # metrics_public: Prometheus sends no token
    assert status == 200 and re.search(r"^# (HELP|TYPE) ", body, re.M), body[:500]
    # the API needs the token from the mounted junction-admin secret
    assert http_get(base + "/api/status")[0] == 401
    assert http_get(base + "/api/status", "not-the-token")[0] == 401
    assert http_get(base + "/api/status", ADMIN_TOKEN)[0] == 200
    # The image's HEALTHCHECK and compose's healthcheck commands, verbatim.
    for path in ("/healthz", "/readyz"):
        r = run(["junction-entrypoint", "healthcheck", path], env=env, timeout=30)
        assert r.returncode == 0, r.stderr


def test_statefulset_pods_form_a_cluster_with_a_learner(procs, tmp_path):
    """Pods junction-0..3 (3 voters + 1 learner) started at once (podManagementPolicy:
    Parallel); each with the peers the entrypoint derives, their DNS names mapped to
    the local gRPC ports."""
    if "cluster" in unsupported_sections():
        pytest.skip("the binary has no [cluster] section yet: " + unsupported_sections()["cluster"])
    ordinals = range(4)
    grpc = {o: f"127.0.0.1:{free_port()}" for o in ordinals}
    derived = {o: render(pod_env(o))[1]["cluster"] for o in ordinals}
    to_local = {derived[o]["advertise"]: grpc[o] for o in ordinals}
    started = []
    for o in ordinals:
        peers = [to_local[p] for p in derived[o]["peers"]]
        started.append(start_pod(
            procs, tmp_path, o,
            JUNCTION_GRPC_LISTEN=grpc[o], JUNCTION_ADVERTISE=grpc[o], JUNCTION_PEERS=",".join(peers),
        ))
    # The bootstrap node alone first: does this binary start the cluster at all?
    started[0][0].wait_ready(CLUSTER_READY_TIMEOUT)
    if not listening(grpc[0]):
        pytest.skip(
            "the binary accepts [cluster] but does not serve cluster gRPC on cluster.listen "
            "(the cluster is not started from main yet)"
        )
    for proc, _ in started[1:]:
        proc.wait_ready(CLUSTER_READY_TIMEOUT)
    for o in ordinals:
        assert listening(grpc[o]), f"junction-{o} does not serve cluster gRPC on {grpc[o]}"
    if "admin" not in unsupported_sections():
        for proc, env in started:
            wait_admin_ready(env)
        # Roles as the cluster reports them: all four pods are members at their
        # advertised addresses, `voters` of them voters (the bootstrap node among
        # them) and the rest learners. Which joiners get the voter seats is join
        # order, not ordinal: with podManagementPolicy Parallel, pod 3 can be a
        # voter and pod 2 the learner.
        voters = int(pod_env(0)["JUNCTION_VOTERS"])
        status_url = f"http://{started[0][1]['JUNCTION_ADMIN']}/api/status"
        deadline, roles = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            code, body = http_get(status_url, ADMIN_TOKEN)
            if code == 404:
                break  # no status API in this binary: the roles are not checked
            members = (json.loads(body).get("cluster") or {}).get("members", []) if code == 200 else []
            roles = {m["node"]: (m["role"], m["addr"]) for m in members}
            kinds = sorted(r for r, _ in roles.values())
            if (
                {n: a for n, (_, a) in roles.items()} == {o + 1: grpc[o] for o in ordinals}
                and kinds == sorted(["voter"] * voters + ["learner"] * (len(ordinals) - voters))
                and roles[1][0] == "voter"
            ):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"cluster members {roles}: expected pods 1-4, {voters} voters (node 1 among them)")
    for proc, _ in reversed(started):
        assert proc.stop() is not None, f"{proc.name} ignored SIGTERM:\n{proc.stderr()}"


class _Stub(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        code = {"/healthz": 200, "/readyz": 503}.get(self.path, 404)
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ok\n" if code == 200 else b"not ready\n")

    def log_message(self, *args):
        pass


def test_healthcheck_command_reads_the_http_status():
    """`junction-entrypoint healthcheck PATH` (Docker HEALTHCHECK, compose) against a stub."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PATH": os.environ["PATH"], "JUNCTION_ADMIN": f"127.0.0.1:{server.server_port}"}
    try:
        hc = lambda path: run(["bash", str(ENTRYPOINT), "healthcheck", path], env=env, timeout=30)  # noqa: E731
        assert hc("/healthz").returncode == 0
        bad = hc("/readyz")
        assert bad.returncode == 1 and "503" in bad.stderr
        assert hc("/nope").returncode == 1
    finally:
        server.shutdown()
    env["JUNCTION_ADMIN"] = f"127.0.0.1:{free_port()}"  # nothing listening
    assert run(["bash", str(ENTRYPOINT), "healthcheck"], env=env, timeout=30).returncode == 1


def test_entrypoint_passes_other_commands_through(tmp_path):
    # `docker run junction:tag junction --help` or a shell for debugging.
    r = run(["bash", str(ENTRYPOINT), "echo", "hello"], env={"PATH": os.environ["PATH"]})
    assert (r.returncode, r.stdout) == (0, "hello\n")
    env = {"PATH": f"{image_bin_dir(tmp_path)}{os.pathsep}{os.environ['PATH']}"}
    r = run(["bash", str(ENTRYPOINT), "junction", "--help"], env=env)
    assert r.returncode == 0 and "--config" in r.stdout


def make_tls_files(directory: Path) -> dict[str, Path]:
    """A CA, a cluster certificate naming node-1 (and localhost) signed by it, and a
    self-signed server certificate, with the openssl command line."""
    directory.mkdir(parents=True, exist_ok=True)
    f = {n: directory / n for n in ("ca.key", "ca.crt", "node.key", "node.csr", "node.crt", "server.key",
                                    "server.crt", "ext")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        ["openssl", "req", "-x509", *ec, "-subj", "/CN=deploy-test-ca", "-days", "2",
         "-keyout", f["ca.key"], "-out", f["ca.crt"]],
        ["openssl", "req", "-new", *ec, "-subj", "/CN=node-1", "-keyout", f["node.key"], "-out", f["node.csr"]],
        ["openssl", "x509", "-req", "-in", f["node.csr"], "-CA", f["ca.crt"], "-CAkey", f["ca.key"],
         "-CAcreateserial", "-days", "2", "-out", f["node.crt"], "-extfile", f["ext"]],
        ["openssl", "req", "-x509", *ec, "-subj", "/CN=localhost", "-days", "2",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", f["server.key"], "-out", f["server.crt"]],
    ]
    f["ext"].write_text("subjectAltName=DNS:node-1,DNS:localhost,IP:127.0.0.1\n")
    for cmd in steps:
        r = run([str(c) for c in cmd], timeout=30)
        assert r.returncode == 0, f"{cmd}: {r.stderr}"
    return f


def test_production_pod_command_runs_with_tls_authentication_and_closed_metrics(procs, tmp_path):
    """The production overlay's pod junction-0 (its env, its ConfigMap template, the
    Secrets it mounts filled with test certificates and tickets): junction accepts
    the config, serves wss://, needs the token for /metrics and drains on SIGTERM."""
    import shutil

    from support import Rendered

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: cannot make the test certificates")
    if unsupported_sections():
        pytest.skip(f"the binary lacks {sorted(unsupported_sections())}")
    r = Rendered("production")
    files = make_tls_files(tmp_path / "pki")
    # What the kubelet mounts from each Secret, under the pod's directory.
    contents = {
        "junction-tls": {"tls.crt": files["server.crt"].read_text(), "tls.key": files["server.key"].read_text()},
        "junction-cluster-tls": {"tls.crt": files["node.crt"].read_text(), "tls.key": files["node.key"].read_text(),
                                 "ca.crt": files["ca.crt"].read_text()},
        "junction-auth": {k: secrets.token_hex(16) for k in ("backend-ticket", "frontend-ticket", "operator-ticket")},
    }
    template = r.template()
    volumes = {v["name"]: v for v in r.pod_spec["volumes"]}
    for mount in r.container["volumeMounts"]:
        secret = volumes.get(mount["name"], {}).get("secret", {})
        if secret.get("secretName") not in contents:
            continue
        local = tmp_path / "secrets" / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        for item in secret["items"]:
            (local / item["path"]).write_text(contents[secret["secretName"]][item["key"]])
        template = template.replace(f'"{mount["mountPath"]}/', f'"{local}/')
    assert "/etc/junction-" not in "".join(l for l in template.splitlines() if not l.startswith("#"))
    env = local_env(r.pod_env(0), tmp_path, template)
    mount_cluster_secret(env)
    c = r.container
    proc = Proc("junction-0", container_argv(c.get("command"), c.get("args")), env, tmp_path)
    procs.append(proc)
    proc.wait_ready(READY_TIMEOUT)
    wait_admin_ready(env)
    listeners = [line for line in proc.stdout if line.startswith("listening")]
    assert any("wss://127.0.0.1:" in line for line in listeners), proc.stdout
    base = f"http://{env['JUNCTION_ADMIN']}"
    assert http_get(base + "/metrics")[0] == 401, "production /metrics must need the token"
    status, body = http_get(base + "/metrics", ADMIN_TOKEN)
    assert status == 200 and "junction_ready 1" in body, body[:300]
    assert proc.stop() == 0, proc.stderr()
