"""Every public write route documents its request body, and what it documents is what the owning
service accepts: the gateway forwards raw bodies, so a body schema that drifted from the upstream's
would send SDK and client authors the wrong shape."""
from __future__ import annotations

from libs.events.codegen import openapi

WRITE_METHODS = ("post", "put", "patch")

#: Write routes that take no body, and why.
NO_BODY = {
    ("post", "/api/v1/models/{model_ref}/versions/{version}/verify"): "a command: re-hash the stored artifact",
    ("post", "/api/v1/models/{model_ref}/rollouts/{rollout_id}/advance"):
        "a command: the next step is the rollout's own",
}

_DUMMY = dict(database_url="postgresql://unused", kafka_bootstrap="unused:9092", redis_url="redis://unused",
              internal_token="unused")


def _write_operations(doc: dict):
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if method in WRITE_METHODS:
                yield method, path, operation


def test_every_write_route_declares_its_request_body():
    doc = openapi()
    missing = [f"{m.upper()} {p}" for m, p, op in _write_operations(doc)
               if "requestBody" not in op and (m, p) not in NO_BODY]
    assert not missing, f"write routes without a requestBody schema: {missing}"
    for key, reason in NO_BODY.items():
        operation = doc["paths"][key[1]][key[0]]
        assert "requestBody" not in operation, f"{key} is listed as body-less ({reason}) but declares a body"


def test_json_bodies_are_objects_with_properties():
    for method, path, operation in _write_operations(openapi()):
        body = operation.get("requestBody")
        if not body or "application/json" not in body["content"]:
            continue
        schema = body["content"]["application/json"]["schema"]
        if "$ref" in str(schema):
            continue  # a parsed parameter: FastAPI put the model in components (checked by FastAPI itself)
        assert schema.get("type") == "object" and schema.get("properties"), f"{method} {path}: {schema}"
        assert "$defs" not in str(schema), f"{method} {path} has a dangling $defs reference"


def test_artifact_upload_is_declared_as_raw_bytes():
    operation = openapi()["paths"]["/api/v1/models/{model_ref}/versions/{version}/artifact"]["put"]
    content = operation["requestBody"]["content"]
    assert list(content) == ["application/octet-stream"]
    assert content["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}


def _upstream_docs() -> list[dict]:
    from services.evaluation.app import create_app as evaluation_app
    from services.evaluation.settings import EvaluationSettings
    from services.lifecycle.app import create_app as lifecycle_app
    from services.lifecycle.settings import LifecycleSettings
    from services.registry.app import create_app as registry_app
    from services.registry.settings import RegistrySettings
    from services.training_scheduler.app import create_app as training_app
    from services.training_scheduler.settings import TrainingSchedulerSettings
    from services.version.app import create_app as version_app
    from services.version.settings import VersionSettings

    store = {"object_store_url": "file:///nonexistent"}
    return [app.openapi() for app in (
        registry_app(RegistrySettings(**_DUMMY)),
        version_app(VersionSettings(**_DUMMY, **store, link_secret="unused-" * 8)),
        lifecycle_app(LifecycleSettings(**_DUMMY, **store)),
        training_app(TrainingSchedulerSettings(**_DUMMY)),
        evaluation_app(EvaluationSettings(**_DUMMY, **store)),
    )]


def _resolved(node, doc: dict):
    """``node`` with every ``#/components/schemas/...`` reference replaced by its target, and the
    ``null`` branch of an optional body dropped (``required`` carries that)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            target = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
            return _resolved({**target, **{k: v for k, v in node.items() if k != "$ref"}}, doc)
        branches = node.get("anyOf")
        if isinstance(branches, list) and {"type": "null"} in branches and len(branches) == 2:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            return _resolved({**next(b for b in branches if b != {"type": "null"}), **rest}, doc)
        return {k: _resolved(v, doc) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolved(v, doc) for v in node]
    return node


def _comparable(body: dict, doc: dict) -> tuple[bool, dict]:
    schema = _resolved(body["content"]["application/json"]["schema"], doc)
    return bool(body.get("required")), {k: v for k, v in schema.items() if k not in ("title", "description")}


def test_forwarded_bodies_match_what_the_owning_service_accepts():
    """A body declared in ``openapi_extra`` is forwarded untouched, so the gateway's OpenAPI must show the
    upstream route's body (same schema, same required flag) at the mirrored ``/internal`` path. A body the
    gateway parses itself (a ``$ref`` into components) is checked too when it is also forwarded there;
    routes the gateway answers alone (keys, grants, rollback commands) have no upstream to match."""
    gateway = openapi()
    upstreams = _upstream_docs()
    checked = 0
    for method, path, operation in _write_operations(gateway):
        body = operation.get("requestBody")
        if not body or "application/json" not in body["content"]:
            continue
        parsed_by_gateway = "$ref" in str(body["content"]["application/json"]["schema"])
        internal = "/internal" + path.removeprefix("/api/v1")
        owner = next((d for d in upstreams if method in d["paths"].get(internal, {})), None)
        if owner is None and parsed_by_gateway:
            continue
        assert owner is not None, f"{method.upper()} {path}: forwarded raw, but no upstream route at {internal}"
        upstream_body = owner["paths"][internal][method].get("requestBody")
        assert upstream_body is not None, f"{method.upper()} {path}: the owning service takes no body"
        assert _comparable(body, gateway) == _comparable(upstream_body, owner), \
            f"{method.upper()} {path} documents a different body than {internal} accepts"
        checked += 1
    assert checked >= 20
