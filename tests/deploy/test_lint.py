"""Linters over the deployment files: shellcheck (the entrypoint and
local-cluster.sh), hadolint (the Dockerfile), yamllint (compose, manifests,
observability configs). All three ship their binaries in PyPI wheels and run
offline."""

from __future__ import annotations

from pathlib import Path

from support import COMPOSE_FILE, DEPLOY, DOCKERFILE, ENTRYPOINT, LOCAL_CLUSTER, run, tool

HERE = Path(__file__).resolve().parent


def yaml_files() -> list[Path]:
    return [COMPOSE_FILE, *sorted(DEPLOY.rglob("*.yaml")), *sorted(DEPLOY.rglob("*.yml"))]


def test_entrypoint_passes_shellcheck():
    r = run([tool("shellcheck"), "--shell=bash", "--severity=style", str(ENTRYPOINT)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_local_cluster_script_passes_shellcheck():
    r = run([tool("shellcheck"), "--shell=bash", "--severity=style", str(LOCAL_CLUSTER)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_passes_hadolint():
    r = run([tool("hadolint"), "--no-color", str(DOCKERFILE)])
    assert r.returncode == 0, r.stdout + r.stderr


def test_yaml_passes_yamllint():
    r = run([tool("yamllint"), "--strict", "-c", str(HERE / "yamllint.yaml"), *map(str, yaml_files())])
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_deployment_file_says_what_it_is_for():
    for path in [*yaml_files(), DOCKERFILE, ENTRYPOINT, LOCAL_CLUSTER, DEPLOY / "junction.toml.tmpl"]:
        lines = path.read_text().splitlines()
        first = lines[1] if lines[0].startswith("#!") else lines[0]
        assert first.startswith("#") and len(first) > 20, f"{path} should open with a comment saying what it is for"
