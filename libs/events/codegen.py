"""Generates the published contracts in ``proto/`` from the pydantic catalog, the one source of truth:

- ``proto/jsonschema/<Event>.json``: JSON Schema of each event body;
- ``proto/asyncapi.json``: AsyncAPI 3.0, one channel per topic, CloudEvents headers on every message;
- ``proto/cairn/events/v1/events.proto``: protobuf messages whose JSON mapping (``json_name``) is the wire;
- ``proto/openapi/gateway.json``: the gateway's HTTP contract.

``python -m libs.events.codegen`` rewrites them (``make proto``); a contract test fails when they drift.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from libs.events.catalog import all_event_classes
from libs.events.envelope import CONTENT_TYPE, SPECVERSION

ROOT = Path(__file__).resolve().parents[2] / "proto"

CE_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary mode, plus W3C trace context",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject"],
    "properties": {
        "ce_specversion": {"type": "string", "const": SPECVERSION},
        "ce_id": {"type": "string", "format": "uuid", "description": "Unique per event; consumers deduplicate on it"},
        "ce_source": {"type": "string", "description": "The emitting service"},
        "ce_type": {"type": "string", "description": "Event type, e.g. ModelRegistered"},
        "ce_subject": {"type": "string", "description": "The aggregate (model id); also the Kafka key"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_dataschema": {"type": "string", "description": "urn:cairn:event:<type>:v<version>"},
        "ce_actor": {"type": "string", "description": "Extension: the principal who caused the event"},
        "content-type": {"type": "string", "const": CONTENT_TYPE},
        "traceparent": {"type": "string", "description": "W3C trace context"},
    },
}


def json_schemas() -> dict[str, dict[str, Any]]:
    out = {}
    for cls in all_event_classes():
        schema = cls.model_json_schema()
        schema["title"] = cls.event_type
        schema["description"] = (cls.__doc__ or "").strip()
        schema["$id"] = cls.dataschema()
        schema["x-cairn-topic"] = cls.topic
        schema["x-cairn-version"] = cls.class_version
        schema["examples"] = [cls.example]
        out[cls.event_type] = schema
    return out


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for cls in all_event_classes():
        channel = channels.setdefault(cls.topic.replace(".", "_"), {
            "address": cls.topic,
            "description": "Keyed by model id, so one model's events keep their order",
            "messages": {},
        })
        channel["messages"][cls.event_type] = {"$ref": f"#/components/messages/{cls.event_type}"}
        messages[cls.event_type] = {
            "name": cls.event_type,
            "title": cls.event_type,
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": CONTENT_TYPE,
            "headers": {"$ref": "#/components/schemas/CloudEventsHeaders"},
            "payload": {"$ref": f"jsonschema/{cls.event_type}.json"},
            "examples": [{"payload": cls.example}],
        }
    operations = {
        f"receive_{key}": {"action": "receive", "channel": {"$ref": f"#/channels/{key}"}}
        for key in channels
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Cairn events", "version": "1.0.0",
                 "description": "Every state change in Cairn, delivered at least once; deduplicate on ce_id."},
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": {"CloudEventsHeaders": CE_HEADERS_SCHEMA}},
    }


# ---- protobuf --------------------------------------------------------------------------------------

def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))


class _ProtoWriter:
    def __init__(self) -> None:
        self.messages: dict[str, str] = {}

    def message(self, name: str, schema: dict[str, Any], defs: dict[str, Any]) -> str:
        if name in self.messages:
            return name
        self.messages[name] = ""  # reserve, for recursive references
        lines = []
        if schema.get("description"):
            lines += [f"// {line}" for line in schema["description"].splitlines()]
        lines.append(f"message {name} {{")
        required = set(schema.get("required", []))
        for number, (field, spec) in enumerate(schema.get("properties", {}).items(), start=1):
            proto_type, label = self.field_type(name, field, spec, defs)
            if label == "optional " and proto_type.startswith("map<"):
                label = ""  # proto3 maps cannot be optional; an absent map reads as empty
            if label == "" and field not in required and not proto_type.startswith("map<"):
                label = "optional "
            comment = f"  // {spec['description']}" if spec.get("description") else ""
            lines.append(f'  {label}{proto_type} {field} = {number} [json_name = "{field}"];{comment}')
        lines.append("}")
        self.messages[name] = "\n".join(lines)
        return name

    def field_type(self, owner: str, field: str, spec: dict[str, Any], defs: dict[str, Any]) -> tuple[str, str]:
        if "$ref" in spec:
            ref = spec["$ref"].split("/")[-1]
            return self.message(ref, defs[ref], defs), ""
        if "anyOf" in spec:
            options = [o for o in spec["anyOf"] if o.get("type") != "null"]
            proto_type, label = self.field_type(owner, field, options[0] if len(options) == 1 else {}, defs)
            return proto_type, ("optional " if label == "" else label)
        kind = spec.get("type")
        if kind == "string":
            return ("google.protobuf.Timestamp" if spec.get("format") == "date-time" else "string"), ""
        if kind == "integer":
            return "int64", ""
        if kind == "number":
            return "double", ""
        if kind == "boolean":
            return "bool", ""
        if kind == "array":
            item_type, _ = self.field_type(owner, field, spec.get("items", {}), defs)
            return item_type, "repeated "
        extra = spec.get("additionalProperties")
        if kind == "object" and isinstance(extra, dict) and extra.get("type") == "string":
            return "map<string, string>", ""
        if "const" in spec or "enum" in spec:
            return "string", ""
        return "google.protobuf.Struct", ""


def protobuf() -> str:
    writer = _ProtoWriter()
    for cls in all_event_classes():
        schema = cls.model_json_schema()
        schema["description"] = f"{cls.event_type} on {cls.topic}: {(cls.__doc__ or '').strip()}"
        writer.message(cls.event_type, schema, schema.get("$defs", {}))
    header = [
        "// Generated from libs/events by `make proto`; do not edit.",
        "// Field json_name values are the wire names, so the proto3 JSON mapping reads and writes the Kafka body.",
        'syntax = "proto3";',
        "",
        "package cairn.events.v1;",
        "",
        'import "google/protobuf/struct.proto";',
        'import "google/protobuf/timestamp.proto";',
        "",
        "",
    ]
    return "\n".join(header) + "\n\n".join(writer.messages.values()) + "\n"


def openapi() -> dict[str, Any]:
    from services.gateway.app import create_app
    from services.gateway.settings import GatewaySettings

    settings = GatewaySettings(database_url="postgresql://unused", kafka_bootstrap="unused:9092",
                               redis_url="redis://unused", internal_token="unused")
    return create_app(settings).openapi()


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """Every generated file, by path relative to proto/."""
    files = {f"jsonschema/{name}.json": _dump(schema) for name, schema in json_schemas().items()}
    files["asyncapi.json"] = _dump(asyncapi())
    files["cairn/events/v1/events.proto"] = protobuf()
    files["openapi/gateway.json"] = _dump(openapi())
    return files


def write(root: Path = ROOT) -> list[str]:
    written = []
    for stale in root.glob("jsonschema/*.json"):
        stale.unlink()
    for rel, text in rendered().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(rel)
    return written


if __name__ == "__main__":
    names = write()
    print(f"wrote {len(names)} files under {ROOT}", file=sys.stderr)
