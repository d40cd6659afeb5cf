"""deploy/: structural checks of the Kustomize tree, against the real CLI parser and config reader.

These tests pin facts of the files as written (paths, probes, ports, hardening, CLI arguments,
config and its secrets); tests/deploy/test_render.py and test_validate.py check what Kustomize
renders from them.
"""

from __future__ import annotations

import base64
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.cli import build_parser
from bridge.config import parse_config
from bridge.kafka.topics import Topics, record_limit
from bridge.settings import DEFAULT_MAX_BODY

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BASE = DEPLOY / "base"
SECRET_EXAMPLE = BASE / "secret.example.yaml"
CONFIG_FILE = "/etc/bridge/bridge.toml"
CONTAINER_TMP = "/tmp"  # noqa: S108 - the mount path inside the container, not a file we create
GLOBAL_FLAGS = ["--log-format", "json"]
UID = 10001
DAY_MS = 24 * 3600 * 1000
# Read by bridge/config.py straight from the environment, whatever bridge.toml says.
DIRECT_ENV = {"BRIDGE_KAFKA_BOOTSTRAP_SERVERS", "BRIDGE_OUTBOX_DSN"}

Doc = dict[str, Any]

# name -> (component label, sub-command words, arguments after them, replicas in base)
PROCESSES: dict[str, tuple[str, list[str], list[str], int]] = {
    "bridge-ingress": (
        "ingress",
        ["ingress"],
        ["--config", CONFIG_FILE, "--port", "8080", "--ops-port", "9090"],
        2,
    ),
    "bridge-inventory-sync": (
        "inventory-sync",
        ["consume", "inventory-sync"],
        ["--config", CONFIG_FILE, "--metrics-port", "9103"],
        1,
    ),
    "bridge-commands": (
        "commands",
        ["consume", "commands"],
        ["--config", CONFIG_FILE, "--metrics-port", "9102"],
        1,
    ),
    "bridge-relay": ("relay", ["relay"], ["--config", CONFIG_FILE, "--metrics-port", "9101"], 1),
}
# name -> {probe: (path, port the process listens on)}.
PROBES: dict[str, dict[str, tuple[str, int]]] = {
    "bridge-ingress": {"readinessProbe": ("/readyz", 9090), "livenessProbe": ("/healthz", 9090)},
    "bridge-inventory-sync": {
        "readinessProbe": ("/readyz", 9103),
        "livenessProbe": ("/healthz", 9103),
    },
    "bridge-commands": {"readinessProbe": ("/readyz", 9102), "livenessProbe": ("/healthz", 9102)},
    "bridge-relay": {
        "startupProbe": ("/healthz", 9101),
        "readinessProbe": ("/readyz", 9101),
        "livenessProbe": ("/healthz", 9101),
    },
}
SCRAPE_PORTS = {
    "bridge-ingress": 9090,
    "bridge-inventory-sync": 9103,
    "bridge-commands": 9102,
    "bridge-relay": 9101,
}
HARDENED = {
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


# -- loading ----------------------------------------------------------------------------------


def documents(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def kustomization(directory: Path) -> Doc:
    (doc,) = documents(directory / "kustomization.yaml")
    return doc


def resource_files(directory: Path) -> Iterator[Path]:
    """The files a kustomization lists under ``resources``, following directory references."""
    for entry in kustomization(directory).get("resources", []):
        path = (directory / entry).resolve()
        yield from resource_files(path) if path.is_dir() else [path]


def base_resources() -> list[Doc]:
    return [doc for path in resource_files(BASE) for doc in documents(path)]


def deployments() -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in base_resources() if d["kind"] == "Deployment"}


def container(deployment: Doc) -> Doc:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: Doc = only
    return result


def generator(directory: Path, name: str) -> Doc | None:
    generators = kustomization(directory).get("configMapGenerator", [])
    return next((g for g in generators if g["name"] == name), None)


def literals(directory: Path) -> dict[str, str]:
    """``bridge-env`` literals of a kustomization, over the base's."""
    merged: dict[str, str] = {}
    for source in (BASE, directory):
        found = generator(source, "bridge-env")
        for item in found["literals"] if found else []:
            key, _, value = item.partition("=")
            merged[key] = value
    return merged


def env_references(value: Any) -> set[str]:
    """Every ``NAME`` of an ``env:NAME`` string anywhere in a parsed TOML document."""
    if isinstance(value, str):
        return {value[4:]} if value.startswith("env:") else set()
    if isinstance(value, Mapping):
        return {name for item in value.values() for name in env_references(item)}
    if isinstance(value, list):
        return {name for item in value for name in env_references(item)}
    return set()


def secret_example() -> dict[str, str]:
    (secret,) = documents(SECRET_EXAMPLE)
    data: dict[str, str] = secret["stringData"]
    return data


def bridge_tomls() -> list[Path]:
    """The directories whose kustomization generates ``bridge-config`` from a bridge.toml."""
    return [
        path.parent
        for path in sorted(DEPLOY.rglob("kustomization.yaml"))
        if generator(path.parent, "bridge-config") is not None
    ]


KUSTOMIZATIONS = sorted(p.parent for p in DEPLOY.rglob("kustomization.yaml"))
YAML_FILES = sorted(DEPLOY.rglob("*.yaml"))


def _rel(path: Path) -> str:
    return str(path.relative_to(DEPLOY))


# -- the Kustomize tree -----------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_every_yaml_document_is_a_kubernetes_object(path: Path) -> None:
    """Every YAML document under deploy/ parses and names its apiVersion and kind."""
    docs = documents(path)
    assert docs
    assert [] == [doc for doc in docs if not {"apiVersion", "kind"} <= set(doc)]


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_rel)
def test_kustomization_paths_exist_inside_their_root(directory: Path) -> None:
    """resources, components, patches and generator files exist, files within the root."""
    doc = kustomization(directory)
    missing: list[str] = []
    for entry in doc.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            if kustomization(path)["kind"] != "Kustomization":
                missing.append(f"resource {entry} is not a Kustomization")
        elif not path.is_file() or not path.is_relative_to(directory):
            missing.append(f"resource {entry}")
    for entry in doc.get("components", []):
        path = (directory / entry).resolve()
        if (
            not (path / "kustomization.yaml").is_file()
            or kustomization(path)["kind"] != "Component"
        ):
            missing.append(f"component {entry}")
    files = [p["path"] for p in doc.get("patches", []) if "path" in p]
    files += [f for g in doc.get("configMapGenerator", []) for f in g.get("files", [])]
    for entry in files:
        path = (directory / entry).resolve()
        if not path.is_file() or not path.is_relative_to(directory):
            missing.append(f"file {entry}")
    assert [] == missing


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_rel)
def test_kustomization_kind_matches_its_place(directory: Path) -> None:
    """components/ holds Components (v1alpha1); base and overlays hold Kustomizations (v1beta1)."""
    expected = (
        ("kustomize.config.k8s.io/v1alpha1", "Component")
        if directory.parent.name == "components"
        else ("kustomize.config.k8s.io/v1beta1", "Kustomization")
    )
    doc = kustomization(directory)
    assert expected == (doc["apiVersion"], doc["kind"])


def test_every_manifest_is_used_and_the_secret_example_is_not() -> None:
    """Each YAML file is a resource or patch of some kustomization, except the Secret example."""
    used = {SECRET_EXAMPLE}
    for directory in KUSTOMIZATIONS:
        doc = kustomization(directory)
        used.add(directory / "kustomization.yaml")
        used |= {(directory / r).resolve() for r in doc.get("resources", [])}
        used |= {(directory / p["path"]).resolve() for p in doc.get("patches", []) if "path" in p}
    assert [] == [_rel(p) for p in YAML_FILES if p not in used]
    assert SECRET_EXAMPLE not in set(resource_files(BASE))


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=_rel)
def test_patches_target_existing_resources(directory: Path) -> None:
    """Every patch names a (kind, name) the base defines."""
    known = {(d["kind"], d["metadata"]["name"]) for d in base_resources()}
    targets: list[tuple[str, str]] = []
    for patch in kustomization(directory).get("patches", []):
        if "target" in patch:
            targets.append((patch["target"]["kind"], patch["target"]["name"]))
        else:
            targets += [
                (d["kind"], d["metadata"]["name"]) for d in documents(directory / patch["path"])
            ]
    assert [] == [t for t in targets if t not in known]


def test_image_tag_is_the_project_version() -> None:
    """The base deploys the image tagged with pyproject's version."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]
    images = kustomization(BASE)["images"]
    assert [{"name": "commerce-bridge", "newTag": version}] == images
    assert {"commerce-bridge"} == {container(d)["image"] for d in deployments().values()}


# -- Deployments ------------------------------------------------------------------------------


def test_one_deployment_per_process_type() -> None:
    """The base has exactly one Deployment per process type (ingress, consumers, relay)."""
    assert set(PROCESSES) == set(deployments())


@pytest.mark.parametrize("name", PROCESSES)
def test_container_args_are_a_valid_bridge_invocation(name: str) -> None:
    """The container args are what the CLI parser accepts: json logs, the sub-command, --config."""
    _, words, rest, _ = PROCESSES[name]
    args = container(deployments()[name])["args"]
    assert GLOBAL_FLAGS + words + rest == args
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"`commerce-bridge {' '.join(args)}` is rejected (exit {exc.code})")
    assert ("json", CONFIG_FILE) == (parsed.log_format, parsed.config)
    assert callable(parsed.func)


@pytest.mark.parametrize("name", PROCESSES)
def test_probes_hit_the_port_the_process_listens_on(name: str) -> None:
    """Probes are httpGet on a declared container port, the one the args make the process use."""
    spec = container(deployments()[name])
    ports = {p["name"]: p["containerPort"] for p in spec.get("ports", [])}
    args = spec["args"]
    listening = {
        int(args[i + 1])
        for i, a in enumerate(args)
        if a in ("--port", "--metrics-port", "--ops-port")
    }
    assert listening == set(ports.values())
    probes = {
        kind: (spec[kind]["httpGet"]["path"], ports.get(spec[kind]["httpGet"]["port"]))
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
        if kind in spec
    }
    assert PROBES[name] == probes


@pytest.mark.parametrize("name", PROCESSES)
def test_resources_have_requests_and_limits(name: str) -> None:
    """Every container requests and limits cpu and memory; the ingress has the sized values."""
    resources = container(deployments()[name])["resources"]
    assert {"cpu", "memory"} == set(resources["requests"]) == set(resources["limits"])
    if name == "bridge-ingress":
        expected = {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        }
        assert expected == resources


@pytest.mark.parametrize("name", PROCESSES)
def test_pods_are_hardened(name: str) -> None:
    """Non-root uid 10001, read-only root with an emptyDir /tmp, no privilege, no capabilities."""
    pod = deployments()[name]["spec"]["template"]["spec"]
    spec = container(deployments()[name])
    assert HARDENED == spec["securityContext"]
    expected_pod = {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert expected_pod == pod["securityContext"]
    assert (False, False) == (pod["automountServiceAccountToken"], pod["enableServiceLinks"])
    mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert {CONTAINER_TMP, "/etc/bridge"} == set(mounts)
    assert "emptyDir" in volumes[mounts[CONTAINER_TMP]]
    assert {"name": "bridge-config"} == volumes[mounts["/etc/bridge"]]["configMap"]


@pytest.mark.parametrize("name", PROCESSES)
def test_sigterm_gets_thirty_seconds_to_drain(name: str) -> None:
    """terminationGracePeriodSeconds is 30: the processes drain on SIGTERM within it."""
    assert 30 == deployments()[name]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("name", PROCESSES)
def test_labels_and_selector(name: str) -> None:
    """name/component/part-of labels on the Deployment and pods; the selector picks the pods."""
    deployment = deployments()[name]
    component, _, _, replicas = PROCESSES[name]
    expected = {
        "app.kubernetes.io/name": "commerce-bridge",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "commerce-bridge",
    }
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert expected == deployment["metadata"]["labels"] == pod_labels
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert replicas == deployment["spec"]["replicas"]


@pytest.mark.parametrize("name", PROCESSES)
def test_environment_comes_from_the_configmap_and_the_secret(name: str) -> None:
    """envFrom the generated bridge-env and the Secret bridge-secrets; BRIDGE_CONFIG is set."""
    spec = container(deployments()[name])
    expected = [{"configMapRef": {"name": "bridge-env"}}, {"secretRef": {"name": "bridge-secrets"}}]
    assert expected == spec["envFrom"]
    assert [{"name": "BRIDGE_CONFIG", "value": CONFIG_FILE}] == spec["env"]


@pytest.mark.parametrize("name", PROCESSES)
def test_prometheus_scrapes_the_metrics_port(name: str) -> None:
    """Pods with /metrics carry the scrape annotations for their port; the others none."""
    annotations = deployments()[name]["spec"]["template"]["metadata"].get("annotations", {})
    scraped = {k: v for k, v in annotations.items() if k.startswith("prometheus.io/")}
    expected: dict[str, str] = {}
    if name in SCRAPE_PORTS:
        expected = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(SCRAPE_PORTS[name]),
            "prometheus.io/path": "/metrics",
        }
    assert expected == scraped


def test_ingress_service_and_disruption_budget() -> None:
    """Service port 80 → the ingress' 8080; a PodDisruptionBudget keeps one ingress pod."""
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in base_resources()}
    service = by_kind[("Service", "bridge-ingress")]["spec"]
    pdb = by_kind[("PodDisruptionBudget", "bridge-ingress")]["spec"]
    ingress = deployments()["bridge-ingress"]
    pod_labels = ingress["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in container(ingress)["ports"]}
    (port,) = service["ports"]
    assert (80, 8080) == (port["port"], ports[port["targetPort"]])
    assert service["selector"].items() <= pod_labels.items()
    assert 1 == pdb["minAvailable"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()


# -- bridge.toml and its secrets --------------------------------------------------------------


def _toml(directory: Path) -> tuple[str, dict[str, Any]]:
    found = generator(directory, "bridge-config")
    assert found is not None
    (name,) = found["files"]
    text = (directory / name).read_text(encoding="utf-8")
    return text, tomllib.loads(text)


def _dummy_env(names: set[str], directory: Path) -> dict[str, str]:
    env = {name: f"dummy-{name.lower()}" for name in names}
    env["BRIDGE_PII_KEY"] = base64.b64encode(bytes(range(32))).decode()
    env["BRIDGE_OUTBOX_DSN"] = secret_example()["BRIDGE_OUTBOX_DSN"]
    env.update(literals(directory))
    return env


@pytest.mark.parametrize("directory", bridge_tomls(), ids=_rel)
def test_generated_bridge_toml_is_a_valid_configuration(directory: Path) -> None:
    """bridge.toml passes parse_config with every env:NAME set: PostgreSQL outbox, env bootstrap."""
    text, raw = _toml(directory)
    env = _dummy_env(env_references(raw) | DIRECT_ENV, directory)
    config = parse_config(text, env, source=_rel(directory))
    assert "postgresql" == config.outbox.dsn.split("://")[0]
    assert env["BRIDGE_KAFKA_BOOTSTRAP_SERVERS"] == config.kafka.bootstrap_servers
    assert "bootstrap_servers" not in raw["kafka"]


@pytest.mark.parametrize("directory", bridge_tomls(), ids=_rel)
def test_every_env_reference_is_provided(directory: Path) -> None:
    """Each env:NAME (and the variables config.py reads) comes from the Secret or bridge-env."""
    _, raw = _toml(directory)
    provided = set(secret_example()) | set(literals(directory)) | {"BRIDGE_CONFIG"}
    assert set() == (env_references(raw) | DIRECT_ENV) - provided


def test_secret_example_holds_only_used_placeholders() -> None:
    """The Secret example has no key no bridge.toml uses, and no value but a placeholder."""
    used = DIRECT_ENV.union(*(env_references(_toml(d)[1]) for d in bridge_tomls()))
    secret = secret_example()
    assert set() == set(secret) - used
    assert {} == {k: v for k, v in secret.items() if "REPLACE-ME" not in v}


def test_deploy_config_is_the_example_config() -> None:
    """deploy/base/bridge.toml differs from bridge.example.toml only in [kafka] and [outbox]."""
    example = tomllib.loads((ROOT / "bridge.example.toml").read_text(encoding="utf-8"))
    _, deployed = _toml(BASE)
    for doc in (example, deployed):
        del doc["kafka"], doc["outbox"]
    assert example == deployed


def test_managed_kafka_config_differs_only_in_kafka() -> None:
    """The managed-kafka bridge.toml is the base's with a SASL_SSL [kafka] table."""
    _, base = _toml(BASE)
    _, managed = _toml(DEPLOY / "overlays" / "managed-kafka")
    expected_kafka = {
        "topic_prefix": base["kafka"]["topic_prefix"],
        "partitions": base["kafka"]["partitions"],
        "replication_factor": base["kafka"]["replication_factor"],
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "env:KAFKA_USERNAME",
        "sasl_password": "env:KAFKA_PASSWORD",
    }
    assert expected_kafka == managed.pop("kafka")
    del base["kafka"]
    assert base == managed


# -- Kafka topics and overlays ----------------------------------------------------------------


def test_strimzi_topics_are_the_kafka_contract() -> None:
    """Eight KafkaTopics of my-cluster: partitions 6 (3 for deliveries, dlq), 3 replicas."""
    _, raw = _toml(BASE)
    topics = Topics(raw["kafka"]["topic_prefix"])
    docs = documents(DEPLOY / "components" / "strimzi-topics" / "strimzi-topics.yaml")
    assert {("kafka.strimzi.io/v1beta2", "KafkaTopic")} == {
        (d["apiVersion"], d["kind"]) for d in docs
    }
    assert {"my-cluster"} == {d["metadata"]["labels"]["strimzi.io/cluster"] for d in docs}
    expected = {name: (6, 3) for name in topics.all()}
    expected[topics.deliveries] = expected[topics.dlq] = (3, 3)
    actual = {
        d["spec"]["topicName"]: (d["spec"]["partitions"], d["spec"]["replicas"]) for d in docs
    }
    assert expected == actual
    retention = {d["spec"]["topicName"]: d["spec"]["config"]["retention.ms"] for d in docs}
    expected_days = {topics.orders: 7, topics.variants: 7, topics.dlq: 30}
    assert expected_days == {t: retention[t] // DAY_MS for t in expected_days}
    assert {2} == {d["spec"]["config"]["min.insync.replicas"] for d in docs}
    max_body = raw.get("ingress", {}).get("max_body_bytes", DEFAULT_MAX_BODY)
    limit = {record_limit(max_body)}  # what `topics ensure` sets: a body the ingress takes fits
    assert limit == {d["spec"]["config"]["max.message.bytes"] for d in docs}


def test_overlays_pick_their_components() -> None:
    """production adds scale-out and the Strimzi topics; managed-kafka only scale-out."""
    components = {
        name: kustomization(DEPLOY / "overlays" / name).get("components", [])
        for name in ("production", "managed-kafka")
    }
    expected = {
        "production": ["../../components/scale-out", "../../components/strimzi-topics"],
        "managed-kafka": ["../../components/scale-out"],
    }
    assert expected == components


def test_scale_out_runs_two_relays_and_autoscales_the_ingress() -> None:
    """scale-out: relay replicas 2; ingress HPA on CPU 70 %, 2 to 10, owning the replica count."""
    directory = DEPLOY / "components" / "scale-out"
    (relay,) = documents(directory / "relay-replicas.yaml")
    assert ("bridge-relay", 2) == (relay["metadata"]["name"], relay["spec"]["replicas"])
    (hpa,) = documents(directory / "ingress-hpa.yaml")
    spec = hpa["spec"]
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "bridge-ingress"}
    assert target == spec["scaleTargetRef"]
    assert (2, 10) == (spec["minReplicas"], spec["maxReplicas"])
    (metric,) = spec["metrics"]
    cpu = {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
    }
    assert cpu == metric
    inline = [p for p in kustomization(directory)["patches"] if "patch" in p]
    assert [[{"op": "remove", "path": "/spec/replicas"}]] == [
        yaml.safe_load(p["patch"]) for p in inline
    ]
