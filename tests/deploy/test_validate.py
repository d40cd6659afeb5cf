"""What a cluster's admission would check: every rendered object against the Kubernetes OpenAPI
schemas (strict: unknown fields are errors), Strimzi topics against their CRD's shape, the
Dockerfile by hadolint, and the network policies: each process may reach only what it needs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.deploy.test_render import DEPLOY, TARGETS, render

ROOT = DEPLOY.parent
BIN = str(Path(sys.executable).parent)
KUBERNETES_VERSION = "1.30.0"  # the oldest Kubernetes the manifests promise to run on
Doc = dict[str, Any]

# The part of Strimzi's KafkaTopic CRD (kafka.strimzi.io/v1beta2) the manifests use.
KAFKA_TOPIC = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
        "kind": {"const": "KafkaTopic"},
        "metadata": {
            "type": "object",
            "required": ["name", "labels"],
            "properties": {
                "labels": {
                    "type": "object",
                    "required": ["strimzi.io/cluster"],
                    "additionalProperties": {"type": "string"},
                }
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "topicName": {"type": "string"},
                "partitions": {"type": "integer", "minimum": 1},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
                "config": {"type": "object"},
            },
        },
    },
}


def _name(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_object_passes_the_kubernetes_schema_strictly(target: str) -> None:
    """Each built-in object validates against Kubernetes' OpenAPI schema with unknown fields
    rejected; each KafkaTopic against the Strimzi CRD's shape."""
    errors: dict[str, str] = {}
    for doc in render(target):
        try:
            if doc["apiVersion"].startswith("kafka.strimzi.io/"):
                jsonschema.validate(doc, KAFKA_TOPIC)
            else:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            errors[_name(doc)] = str(exc).splitlines()[0]
    assert {} == errors


def test_strict_validation_rejects_an_unknown_field() -> None:
    """The validator used above does reject a misspelt field (so a pass means something)."""
    deployment = next(d for d in render("base") if d["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_dockerfile_passes_hadolint() -> None:
    """hadolint (from the test dependencies) finds nothing to report in the Dockerfile."""
    hadolint = shutil.which("hadolint", path=BIN)
    assert hadolint is not None, "hadolint is missing from the virtualenv: pip install -e '.[test]'"
    done = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (0, "") == (done.returncode, done.stdout + done.stderr)


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    """hadolint does fail on a Dockerfile with known problems (so the check above can fail)."""
    hadolint = shutil.which("hadolint", path=BIN)
    assert hadolint is not None
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && apt-get install curl\n", encoding="utf-8")
    done = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, check=False)
    assert 0 != done.returncode


# -- network policies --------------------------------------------------------------------------


def _objects(kind: str) -> list[Doc]:
    return [d for d in render("overlays/production") if d["kind"] == kind]


def _selects(selector: Doc, labels: dict[str, str]) -> bool:
    wanted = selector.get("matchLabels", {})
    return all(labels.get(k) == v for k, v in wanted.items())


def _pods() -> dict[str, Doc]:
    return {d["metadata"]["name"]: d["spec"]["template"] for d in _objects("Deployment")}


def _policies_for(labels: dict[str, str]) -> list[Doc]:
    return [p for p in _objects("NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]


def _egress_ports(policies: list[Doc]) -> set[tuple[int | str, str]]:
    return {
        (port["port"], port.get("protocol", "TCP"))
        for policy in policies
        for rule in policy["spec"].get("egress", [])
        for port in rule.get("ports", [])
    }


def _ingress_ports(policies: list[Doc]) -> set[int | str]:
    return {
        port["port"]
        for policy in policies
        for rule in policy["spec"].get("ingress", [])
        for port in rule.get("ports", [])
    }


def test_every_pod_is_denied_by_default_and_has_exactly_one_policy_of_its_own() -> None:
    """Each process' pods are selected by the default deny plus exactly one policy of their own,
    restricting both directions."""
    for name, pod in _pods().items():
        policies = _policies_for(pod["metadata"]["labels"])
        names = sorted(p["metadata"]["name"] for p in policies)
        assert sorted(["bridge-default-deny", name]) == names
        for policy in policies:
            assert {"Ingress", "Egress"} == set(policy["spec"]["policyTypes"])


def test_egress_is_only_what_each_process_needs() -> None:
    """DNS and Kafka for all; the outbox (5432) for the processes that use it; platform HTTPS
    (443) only for the relay and the reconciling inventory-sync; nothing else."""
    dns = {(53, "UDP"), (53, "TCP")}
    kafka = {(9092, "TCP"), (9093, "TCP"), (9094, "TCP"), (9096, "TCP")}
    outbox = {(5432, "TCP")}
    https = {(443, "TCP")}
    expected = {
        "bridge-ingress": dns | kafka,
        "bridge-commands": dns | kafka | outbox,
        "bridge-inventory-sync": dns | kafka | outbox | https,
        "bridge-relay": dns | kafka | outbox | https,
    }
    actual = {
        name: _egress_ports(_policies_for(pod["metadata"]["labels"]))
        for name, pod in _pods().items()
    }
    assert expected == actual


def test_only_the_ingress_takes_traffic_beyond_its_probes() -> None:
    """Inbound: the ingress' webhook port and every process' ops port, each a declared port."""
    for name, pod in _pods().items():
        declared = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
        allowed = _ingress_ports(_policies_for(pod["metadata"]["labels"]))
        expected = {"http", "metrics"} if name == "bridge-ingress" else {"metrics"}
        assert expected == allowed
        assert allowed & declared, f"{name}: no allowed inbound port is declared by its pod"
