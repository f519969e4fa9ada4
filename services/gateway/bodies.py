"""Request body declarations for routes that forward the raw body.

Most gateway routes hand the body to the owning service untouched: that service is the validator of
record, and the gateway must not refuse (or record as an idempotent result) what it would accept. So
these routes do not take a parsed pydantic parameter; they declare the owning service's model in
``openapi_extra`` instead, and the published OpenAPI still shows every body. The schema is inlined
(nested ``$defs`` resolved) because ``openapi_extra`` cannot add entries to ``components``."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def json_body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` for a JSON body shaped like ``model``; ``required=False`` where the owner
    accepts an empty body (all defaults)."""
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": inline_schema(model)}}}}


def raw_body(media_type: str = "application/octet-stream", description: str = "") -> dict[str, Any]:
    """``openapi_extra`` for a body that streams through as bytes."""
    body: dict[str, Any] = {"required": True,
                            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's validation JSON Schema with every ``#/$defs/...`` reference replaced by its target."""
    schema = model.model_json_schema(mode="validation")
    defs = schema.pop("$defs", {})

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref.removeprefix("#/$defs/")
                if name in seen:  # a recursive model: no finite inline form
                    raise ValueError(f"{model.__name__} is recursive through {name}; declare it another way")
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[name], (*seen, name)), **resolve(rest, seen)}
            return {k: resolve(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, seen) for v in node]
        return node

    return resolve(schema, ())
