"""The deployment manifests agree with the code.

- docker-compose.yml and deploy/k8s run every service of ``libs.stack.catalog`` (and the gateway) on the
  port ``make run`` gives it, and tell every service where the others are;
- every Kubernetes Deployment has readiness and liveness probes, resources and a non-root security context;
- the Grafana dashboards and the Prometheus alert rules only query metrics defined in libs/kit/metrics.py
  (plus Prometheus' ``up``), so a renamed metric cannot silently blank a panel or an alert;
- no deployment file carries something that looks like a real secret: secrets are ``${VAR}`` references
  in compose, and ``change-me`` placeholders in deploy/env.example and deploy/k8s/secret.template.yaml.

Static checks only (no Docker engine or cluster needed); ``kubectl kustomize`` runs too when kubectl is installed.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import subprocess
from collections import Counter as Tally
from pathlib import Path

import pytest
import yaml

from libs.stack.catalog import GATEWAY, SERVICES, ServiceSpec

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SECRET_TEMPLATE = K8S / "secret.template.yaml"
ENV_EXAMPLE = DEPLOY / "env.example"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
METRICS_PY = ROOT / "libs" / "kit" / "metrics.py"

SERVICE_PORT_BASE = 8180  # libs/stack/supervisor.py StackConfig.service_port_base
GATEWAY_PORT = 8080
PRODUCTION_ROUTE = "/api/v1/models/{model_ref}/production"
PLACEHOLDER = "change-me"


def all_specs() -> tuple[ServiceSpec, ...]:
    return (*SERVICES, GATEWAY)


def expected_port(spec: ServiceSpec) -> int:
    return GATEWAY_PORT if spec is GATEWAY else SERVICE_PORT_BASE + spec.port_offset


def is_http(spec: ServiceSpec) -> bool:
    return getattr(spec, "http", True)  # training workers: no HTTP port, no URL, not migrated


def spec_args(spec: ServiceSpec) -> tuple[str, ...]:
    return tuple(getattr(spec, "args", ("serve",)))


def runs_module(command: object, module: str, args: tuple[str, ...] | None = None) -> bool:
    """Whether ``command`` is ``python -m module`` (followed by exactly ``args`` when given)."""
    if not isinstance(command, list):
        return False
    for i in range(len(command) - 1):
        if command[i] == "-m" and command[i + 1] == module:
            return args is None or tuple(command[i + 2:]) == args
    return False


def runs_spec(command: object, spec: ServiceSpec) -> bool:
    return runs_module(command, spec.module, spec_args(spec))


# ---------------------------------------------------------------------------------------------- compose
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_service_of(compose: dict, spec: ServiceSpec) -> tuple[str, dict]:
    found = [(name, svc) for name, svc in compose["services"].items() if runs_spec(svc.get("command"), spec)]
    command = " ".join(("python -m", spec.module, *spec_args(spec)))
    assert len(found) == 1, f"docker-compose.yml should run `{command}` in exactly one service, found {[n for n, _ in found]}"
    return found[0]


def test_compose_runs_every_catalog_service_on_its_port(compose):
    for spec in all_specs():
        name, svc = compose_service_of(compose, spec)
        env = svc.get("environment") or {}
        assert isinstance(env, dict), f"{name}: environment should be a mapping (it merges x-cairn-env)"
        assert {"CAIRN_DATABASE_URL", "CAIRN_KAFKA_BOOTSTRAP", "CAIRN_REDIS_URL", "CAIRN_INTERNAL_TOKEN"} <= set(env), name
        if not is_http(spec):
            continue
        assert str(env.get("CAIRN_PORT")) == str(expected_port(spec)), f"{name}: CAIRN_PORT"
        assert env.get("CAIRN_HOST") == "0.0.0.0", f"{name} must listen on all interfaces inside its container"
        for other in SERVICES:
            if other.url_env and is_http(other):
                other_name, _ = compose_service_of(compose, other)
                assert env.get(other.url_env) == f"http://{other_name}:{expected_port(other)}", f"{name}: {other.url_env}"


def test_compose_brings_up_the_infrastructure_in_order(compose):
    services = compose["services"]
    for required in ("kafka", "postgres", "redis", "minio", "minio-setup", "opensearch", "prometheus", "grafana", "init"):
        assert required in services, f"docker-compose.yml lacks {required}"
    assert "KRaft" in COMPOSE.read_text() and services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert str(services["kafka"]["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "true"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["redis"]["image"].startswith("redis:7")
    assert "appendonly yes" in " ".join(services["redis"]["command"])
    assert "pg_trgm" in (DEPLOY / "postgres" / "initdb" / "01-cairn.sh").read_text()
    assert "/opt/cairn/init.py" in services["init"]["command"]

    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on should name its conditions"
        for dep, how in depends.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = how["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), f"{name} -> {dep}: {condition}"
            target = services[dep]
            if condition == "service_healthy":
                check = target.get("healthcheck") or {}
                assert check.get("test") and not check.get("disable"), f"{name} waits for {dep} to be healthy, which has no healthcheck"
            else:
                assert target.get("restart") == "no", f"{dep} is a one-shot job: restart should be \"no\""
        if name in ("init", "minio-setup") or "image" not in svc:
            continue
        if svc.get("restart") != "no":
            assert (svc.get("healthcheck") or {}).get("test"), f"{name} has no healthcheck"

    for spec in all_specs():
        name, svc = compose_service_of(compose, spec)
        assert svc["depends_on"]["init"]["condition"] == "service_completed_successfully", f"{name} must wait for migrations"


def test_compose_workers(compose):
    workers = {svc["command"][-1]: svc for svc in compose["services"].values()
               if runs_module(svc.get("command"), "services.worker")}
    assert set(workers) == {"cpu", "gpu"}, "one compose service per worker pool (--pool cpu / --pool gpu)"
    assert "replicas" in workers["cpu"]["deploy"]
    devices = workers["gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert workers["gpu"]["build"]["target"] == "worker-cuda"


def test_compose_publishes_only_gateway_grafana_and_minio_console(compose):
    published = {}
    for name, svc in compose["services"].items():
        for port in svc.get("ports") or []:
            target = port["target"] if isinstance(port, dict) else str(port).rsplit(":", 1)[-1].split("/")[0]
            published.setdefault(name, set()).add(int(target))
    gateway_name, _ = compose_service_of(compose, GATEWAY)
    assert published == {gateway_name: {GATEWAY_PORT}, "grafana": {3000}, "minio": {9001}}


def compose_required_variables() -> set[str]:
    lines = [line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#")]
    return set(re.findall(r"\$\{([A-Z0-9_]+):\?", "\n".join(lines)))


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_compose_secrets_come_from_the_env_file(compose):
    required = compose_required_variables()
    assert {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "CAIRN_INTERNAL_TOKEN", "CAIRN_LINK_SECRET"} <= required
    documented = env_example()
    assert required <= set(documented), f"document in deploy/env.example: {sorted(required - set(documented))}"

    secretish = re.compile(r"(PASSWORD|SECRET|TOKEN)")
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            value = str(value)
            if secretish.search(key):
                assert value.startswith("${"), f"{name}: {key} must come from .env, not be written in docker-compose.yml"
            for password in re.findall(r"://[^:/@\s]*:([^@\s]+)@", value):
                assert password.startswith("${"), f"{name}: {key} embeds a literal password"


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: $$, ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}."""
    def one(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2) or "", match.group(3) or ""
        current = env.get(name)
        if (op in (":-", ":?") and not current) or (op in ("-", "?") and current is None):
            assert "?" not in op, f"${{{name}}} is required: {arg}"
            return arg
        return current or ""
    return re.sub(r"\$\$|\$\{([A-Za-z0-9_]+)(:?[-?])?([^}]*)\}", one, value)


def settings_class(spec: ServiceSpec):
    import importlib

    from libs.kit.settings import ServiceSettings

    module = importlib.import_module(f"{spec.module}.settings")
    found = [v for v in vars(module).values()
             if isinstance(v, type) and issubclass(v, ServiceSettings) and v.__module__ == module.__name__]
    assert len(found) == 1, f"{spec.module}.settings should define one ServiceSettings subclass"
    return found[0]


def check_settings(spec: ServiceSpec, env: dict[str, str], monkeypatch, where: str) -> None:
    """The service's own settings class accepts this environment, as it would at start-up."""
    from libs.storage.factory import open_object_store

    with monkeypatch.context() as m:
        for name in [n for n in os.environ if n.startswith("CAIRN_")]:
            m.delenv(name)
        for name, value in env.items():
            m.setenv(name, str(value))
        settings = settings_class(spec)()
    assert settings.host == "0.0.0.0", where
    if is_http(spec):
        assert settings.port == expected_port(spec), where
    if "CAIRN_OBJECT_STORE_URL" in env:
        store = open_object_store(env["CAIRN_OBJECT_STORE_URL"])  # parses the URL; no I/O
        assert store.name == "s3", where


def test_compose_environment_satisfies_each_service_settings(compose, monkeypatch):
    dot_env = env_example()
    for spec in all_specs():
        name, svc = compose_service_of(compose, spec)
        env = {k: interpolate(str(v), dot_env) for k, v in svc["environment"].items()}
        check_settings(spec, env, monkeypatch, f"docker-compose.yml {name}")


# ---------------------------------------------------------------------------------------------- k8s
def k8s_documents() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["__file__"] = path.name
                docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def k8s() -> list[dict]:
    return k8s_documents()


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def pod_containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


def deployment_of(docs: list[dict], spec: ServiceSpec) -> dict:
    found = [d for d in of_kind(docs, "Deployment")
             if any(runs_spec(c.get("command", []) + c.get("args", []), spec) for c in pod_containers(d))]
    command = " ".join(("python -m", spec.module, *spec_args(spec)))
    assert len(found) == 1, f"deploy/k8s should run `{command}` in exactly one Deployment, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def test_k8s_runs_every_catalog_service_behind_a_service(k8s):
    config = next(d for d in of_kind(k8s, "ConfigMap") if d["metadata"]["name"] == "cairn-config")["data"]
    services = of_kind(k8s, "Service")
    for spec in all_specs():
        deployment = deployment_of(k8s, spec)
        if not is_http(spec):
            continue
        container = pod_containers(deployment)[0]
        port = expected_port(spec)
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env.get("CAIRN_PORT") == str(port), f"{deployment['metadata']['name']}: CAIRN_PORT"
        assert port in [p["containerPort"] for p in container["ports"]]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        fronting = [s for s in services
                    if s["spec"]["selector"].items() <= pod_labels.items()
                    and port in [p["port"] for p in s["spec"]["ports"]]]
        assert len(fronting) == 1, f"one Service should expose {spec.module} on {port}"
        if spec.url_env:
            assert config.get(spec.url_env) == f"http://{fronting[0]['metadata']['name']}:{port}", spec.url_env
    assert config.get("CAIRN_HOST") == "0.0.0.0"
    assert "CAIRN_PUBLIC_URL" in config


def test_k8s_environment_satisfies_each_service_settings(k8s, monkeypatch):
    config = next(d for d in of_kind(k8s, "ConfigMap") if d["metadata"]["name"] == "cairn-config")["data"]
    secrets = yaml.safe_load(SECRET_TEMPLATE.read_text())["stringData"]
    for spec in all_specs():
        deployment = deployment_of(k8s, spec)
        container = pod_containers(deployment)[0]
        env = {**config, **secrets, **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e}}
        check_settings(spec, env, monkeypatch, f"deploy/k8s {deployment['metadata']['name']}")


def test_k8s_deployments_have_probes_resources_and_run_unprivileged(k8s):
    deployments = of_kind(k8s, "Deployment")
    assert deployments
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod.get("enableServiceLinks") is False, f"{name}: service links would inject *_PORT variables"
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            assert container.get("readinessProbe"), f"{where} has no readinessProbe"
            assert container.get("livenessProbe"), f"{where} has no livenessProbe"
            if "httpGet" in container["readinessProbe"]:
                assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where
                assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", where
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][part]), f"{where}: resources.{part}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where


def test_k8s_workers_autoscaling_disruption_budgets_ingress_and_init_job(k8s):
    workers = {}
    for deployment in of_kind(k8s, "Deployment"):
        for container in pod_containers(deployment):
            if runs_module(container.get("command", []), "services.worker"):
                workers[container["command"][-1]] = (deployment, container)
    assert set(workers) == {"cpu", "gpu"}, "one Deployment per worker pool"
    gpu, gpu_container = workers["gpu"]
    assert str(gpu_container["resources"]["limits"]["nvidia.com/gpu"]) == "1"
    gpu_pod = gpu["spec"]["template"]["spec"]
    assert gpu_pod.get("nodeSelector") and gpu_pod.get("tolerations")

    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(k8s, "HorizontalPodAutoscaler")}
    gateway = deployment_of(k8s, GATEWAY)
    assert {gateway["metadata"]["name"], workers["cpu"][0]["metadata"]["name"]} <= hpa_targets
    for name in hpa_targets:  # the autoscaler owns the replica count
        assert "replicas" not in next(d for d in of_kind(k8s, "Deployment") if d["metadata"]["name"] == name)["spec"]

    lifecycle = next(d for d in of_kind(k8s, "Deployment")
                     if any(runs_module(c.get("command"), "services.lifecycle") for c in pod_containers(d)))
    budgets = [p["spec"]["selector"]["matchLabels"] for p in of_kind(k8s, "PodDisruptionBudget")]
    for deployment in (gateway, lifecycle):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert any(b.items() <= labels.items() for b in budgets), f"no PodDisruptionBudget for {deployment['metadata']['name']}"

    ingress_backends = {path["backend"]["service"]["name"]
                        for ing in of_kind(k8s, "Ingress") for rule in ing["spec"]["rules"] for path in rule["http"]["paths"]}
    assert ingress_backends == {"gateway"}, "only the gateway is exposed"

    jobs = of_kind(k8s, "Job")
    assert any("/opt/cairn/init.py" in c["command"] for j in jobs for c in pod_containers(j)), "no init Job"


def test_kustomization_lists_every_manifest_but_the_secret_template():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", SECRET_TEMPLATE.name}
    assert listed == on_disk
    assert SECRET_TEMPLATE.exists() and SECRET_TEMPLATE.name not in listed, "applying the kustomization must not overwrite real secrets"
    if shutil.which("kubectl"):
        result = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert {d["metadata"].get("namespace") for d in yaml.safe_load_all(result.stdout)
                if d and d["kind"] != "Namespace"} == {"cairn"}


# ---------------------------------------------------------------------------------------------- metrics
def defined_series() -> set[str]:
    """Series names the collectors in libs/kit/metrics.py expose, as prometheus_client names them."""
    suffixes = {"Counter": ("_total", "_created"), "Histogram": ("_bucket", "_sum", "_count", "_created"),
                "Summary": ("", "_sum", "_count", "_created"), "Gauge": ("",)}
    names = set()
    for node in ast.walk(ast.parse(METRICS_PY.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in suffixes:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                base = first.value.removesuffix("_total") if node.func.id == "Counter" else first.value
                names |= {base + suffix for suffix in suffixes[node.func.id]}
    return names


ALLOWED_SERIES = defined_series() | {"up"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan", "start", "end"}


def promql_series(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (function names, labels and keywords excluded)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # string literals first
    text = re.sub(r"\$\{[^}]*\}|\$\w+", " ", text)                                  # Grafana variables
    text = re.sub(r"\{[^}]*\}", " ", text)                                          # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)                                         # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = set()
    for match in re.finditer(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        word, is_call = match.group(1), match.group(2)
        if not is_call and word not in _KEYWORDS:
            found.add(word)
    return found


def test_promql_series_extraction():
    assert promql_series('histogram_quantile(0.99, sum by (service, le) (rate(cairn_event_age_seconds_bucket'
                         '{service=~"$service", route="/x/{y}"}[$__rate_interval])))') == {"cairn_event_age_seconds_bucket"}
    assert promql_series('absent(cairn_up{service="gateway"}) or up == 0 offset 5m') == {"cairn_up", "up"}
    assert promql_series("sum(rate(bogus_requests_total[5m])) / 1e3") == {"bogus_requests_total"}
    assert {"cairn_http_requests_total", "cairn_http_request_seconds_bucket", "cairn_up",
            "cairn_outbox_commit_to_publish_seconds_bucket", "cairn_events_dead_lettered_total"} <= ALLOWED_SERIES


def dashboard_queries(node: object) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and template-variable queries."""
    found: list[str] = []
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            found.append(node["expr"])
        if node.get("type") == "query" and "query" in node:
            query = node["query"]["query"] if isinstance(node["query"], dict) else node["query"]
            match = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,\s*)?\w+\s*\)\s*", query)
            found.append((match.group(1) or "") if match else query)
        for value in node.values():
            found += dashboard_queries(value)
    elif isinstance(node, list):
        for value in node:
            found += dashboard_queries(value)
    return found


def test_dashboards_are_json_and_query_only_defined_metrics():
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, "no Grafana dashboards in deploy/grafana/dashboards"
    uids = []
    all_exprs = []
    for path in files:
        dashboard = json.loads(path.read_text())
        uids.append(dashboard["uid"])
        exprs = dashboard_queries(dashboard)
        assert exprs, f"{path.name} has no queries"
        for expr in exprs:
            unknown = promql_series(expr) - ALLOWED_SERIES
            assert not unknown, f"{path.name}: {sorted(unknown)} not defined in libs/kit/metrics.py, in: {expr}"
        all_exprs += exprs
    assert len(uids) == len(set(uids)), "dashboard uids must be unique"
    overview = json.loads((DASHBOARDS / "cairn-overview.json").read_text())
    assert overview["title"] == "Cairn overview"
    assert any(f'route="{PRODUCTION_ROUTE}"' in e for e in all_exprs), "the production lookup needs its own panel"
    used = set().union(*(promql_series(e) for e in all_exprs))
    for metric in ("cairn_http_requests_total", "cairn_http_request_seconds_bucket", "cairn_outbox_published_total",
                   "cairn_outbox_commit_to_publish_seconds_bucket", "cairn_event_age_seconds_bucket",
                   "cairn_events_dead_lettered_total", "cairn_up", "up"):
        assert metric in used, f"the overview should chart {metric}"


def test_alert_rules_query_only_defined_metrics():
    rules = [r for group in yaml.safe_load(ALERTS.read_text())["groups"] for r in group["rules"]]
    assert len({r["alert"] for r in rules}) == len(rules)
    used = set()
    for rule in rules:
        unknown = promql_series(rule["expr"]) - ALLOWED_SERIES
        assert not unknown, f"alert {rule['alert']}: {sorted(unknown)} not defined in libs/kit/metrics.py"
        assert rule["labels"]["severity"] in ("critical", "warning") and rule["annotations"]["summary"]
        used |= promql_series(rule["expr"])
    assert {"up", "cairn_up", "cairn_http_requests_total", "cairn_outbox_commit_to_publish_seconds_bucket",
            "cairn_events_dead_lettered_total", "cairn_event_age_seconds_bucket"} <= used


def test_prometheus_scrapes_every_http_service(compose):
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    jobs = {j["job_name"]: j for j in config["scrape_configs"] if j["job_name"].startswith("cairn")}
    targets = {(name, sd["port"]) for job in jobs.values() for sd in job["dns_sd_configs"] for name in sd["names"]}
    for spec in all_specs():
        if is_http(spec):
            name, _ = compose_service_of(compose, spec)
            assert (name, expected_port(spec)) in targets, f"Prometheus does not scrape {name}:{expected_port(spec)}"
    # the gateway's /metrics needs the internal token: its job carries it, from a compose secret
    gateway_job = next(j for j in jobs.values() if any("gateway" in sd["names"] for sd in j["dns_sd_configs"]))
    token_file = gateway_job["authorization"]["credentials_file"]
    secret = token_file.removeprefix("/run/secrets/")
    assert compose["secrets"][secret] == {"environment": "CAIRN_INTERNAL_TOKEN"}
    assert secret in compose["services"]["prometheus"]["secrets"]
    assert all("authorization" not in j for j in jobs.values() if j is not gateway_job)


# ---------------------------------------------------------------------------------------------- images and secrets
def test_dockerfile_builds_a_non_root_image_with_the_pinned_torch():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "python:3.11-slim" in dockerfile and "nvidia/cuda:" in dockerfile
    assert "pip install -c constraints.txt ." in dockerfile
    assert re.search(r"^USER 10001", dockerfile, re.M) and "HEALTHCHECK" in dockerfile
    assert re.search(r"^FROM .* AS worker-cuda$", dockerfile, re.M)
    pinned = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M).group(1)
    assert f"ARG TORCH_VERSION={pinned}" in dockerfile, "the image's torch must match constraints.txt"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv/", ".cairn/", ".env", ".pytest_cache/", "**/__pycache__/"} <= set(ignored)


def deployment_files() -> list[Path]:
    files = [COMPOSE, ROOT / "Dockerfile", ROOT / ".dockerignore"]
    files += [p for p in sorted(DEPLOY.rglob("*")) if p.is_file() and "__pycache__" not in p.parts]
    return files


_SECRET_FORMATS = {
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "Cairn API key": re.compile(r"\bcairn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}"),
}
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:/@\s\"']*:([^@\s\"']+)@")
_SECRET_KEY_LINE = re.compile(r"^\s*-?\s*([A-Z][A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN)[A-Z0-9_]*)\s*[:=]\s*(.*?)\s*$")


def is_placeholder(value: str) -> bool:
    value = value.strip().strip("'\"")
    return (value == "" or PLACEHOLDER in value.lower() or value.startswith(("${", "$$", "$(")) or value in ("...", "***")
            or re.fullmatch(r"[A-Z][A-Z_]*|<[^>]+>", value) is not None)


def entropy(token: str) -> float:
    counts = Tally(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def test_no_deployment_file_contains_a_real_looking_secret():
    for path in deployment_files():
        text = path.read_text()
        where = path.relative_to(ROOT)
        for what, pattern in _SECRET_FORMATS.items():
            assert not pattern.search(text), f"{where} contains what looks like a {what}"
        for password in _URL_PASSWORD.findall(text):
            assert is_placeholder(password), f"{where}: a URL carries the literal password {password[:4]}..."
        for token in re.findall(r"[A-Za-z0-9+/=_-]{32,}", text):
            mixed = re.search(r"[a-z]", token) and re.search(r"[A-Z]", token) and re.search(r"\d", token)
            assert not (mixed and entropy(token) > 4.0), f"{where} contains a high-entropy string {token[:6]}..."
        if path.suffix in (".yml", ".yaml", ".example") or path.name.startswith("env"):
            for line in text.splitlines():
                match = _SECRET_KEY_LINE.match(line)
                if match and not line.lstrip().startswith("#"):
                    value = match.group(2).split(" #")[0]
                    assert is_placeholder(value), f"{where}: {match.group(1)} has a literal value"


def test_secret_templates_hold_only_placeholders():
    for key, value in env_example().items():
        if re.search(r"PASSWORD|SECRET|TOKEN", key):
            assert PLACEHOLDER in value, f"deploy/env.example: {key} should be a {PLACEHOLDER} placeholder"
    secret = yaml.safe_load(SECRET_TEMPLATE.read_text())
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "cairn-secrets"
    for key, value in secret["stringData"].items():
        assert PLACEHOLDER in value, f"{SECRET_TEMPLATE.name}: {key} should hold a {PLACEHOLDER} placeholder"
    k8s_env = {ref["secretRef"]["name"] for d in of_kind(k8s_documents(), "Deployment")
               for c in pod_containers(d) for ref in c.get("envFrom", []) if "secretRef" in ref}
    assert k8s_env == {"cairn-secrets"}
    for name in ("CAIRN_DATABASE_URL", "CAIRN_REDIS_URL", "CAIRN_INTERNAL_TOKEN", "CAIRN_LINK_SECRET", "CAIRN_OBJECT_STORE_URL"):
        assert name in secret["stringData"], f"{SECRET_TEMPLATE.name} lacks {name}"
