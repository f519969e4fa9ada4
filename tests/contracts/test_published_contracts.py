"""proto/ is generated from the pydantic catalog and the gateway app; these tests fail when the
committed files drift, and prove the JSON Schema and protobuf really describe the wire."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import jsonschema
import pytest

from libs.events import codegen
from libs.events.catalog import all_event_classes
from libs.events.envelope import Envelope

PROTO = Path(codegen.ROOT)


def test_committed_contracts_match_the_code():
    expected = codegen.rendered()
    for rel, text in expected.items():
        path = PROTO / rel
        assert path.exists(), f"proto/{rel} is missing; run `make proto`"
        assert path.read_text() == text, f"proto/{rel} drifted from the code; run `make proto` and review the diff"
    committed = {str(p.relative_to(PROTO)) for p in PROTO.glob("jsonschema/*.json")}
    assert committed == {rel for rel in expected if rel.startswith("jsonschema/")}, "stale schemas in proto/"


@pytest.mark.parametrize("cls", all_event_classes(), ids=lambda c: c.event_type)
def test_wire_bodies_validate_against_their_json_schema(cls):
    schema = json.loads((PROTO / "jsonschema" / f"{cls.event_type}.json").read_text())
    body = json.loads(Envelope(data=cls.model_validate(cls.example), source="t", actor="t").body())
    jsonschema.validate(body, schema)


def test_asyncapi_names_every_event_on_its_topic():
    doc = json.loads((PROTO / "asyncapi.json").read_text())
    assert doc["asyncapi"].startswith("3.")
    for cls in all_event_classes():
        channel = doc["channels"][cls.topic.replace(".", "_")]
        assert channel["address"] == cls.topic and cls.event_type in channel["messages"]


def test_protobuf_compiles_and_its_json_mapping_reads_the_wire(tmp_path):
    from grpc_tools import protoc
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    code = protoc.main(["protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={tmp_path}",
                        str(PROTO / "cairn/events/v1/events.proto")])
    assert code == 0, "protoc refused proto/cairn/events/v1/events.proto"
    sys.path.insert(0, str(tmp_path))
    try:
        module = importlib.import_module("cairn.events.v1.events_pb2")
        from google.protobuf import json_format

        for cls in all_event_classes():
            body = Envelope(data=cls.model_validate(cls.example), source="t", actor="t").body()
            message = json_format.Parse(body, getattr(module, cls.event_type)())  # unknown fields would raise
            back = json_format.MessageToDict(message, preserving_proto_field_name=True)
            assert set(back) <= set(json.loads(body)), cls.event_type
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("cairn.events")]:
            del sys.modules[name]
