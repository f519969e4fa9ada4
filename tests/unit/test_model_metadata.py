"""Typed metadata per model type, tags, merge patches and the update rules, pure."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from libs.kit.errors import ValidationFailed
from services.registry import domain
from services.registry.domain import ModelType, Registration

NOW = datetime(2026, 11, 24, tzinfo=timezone.utc)


def fields(exc: ValidationFailed) -> list[str]:
    return [e.field for e in exc.errors]


@pytest.mark.parametrize("model_type, metadata", [
    (ModelType.transformer, {"vocab_size": 30000, "max_seq_len": 512, "d_model": 768, "num_heads": 12,
                             "num_layers": 12, "d_ff": 3072, "num_classes": 2, "dropout": 0.1}),
    (ModelType.vision, {"image_size": 224, "image_channels": 3, "num_classes": 1000, "base_channels": 64,
                        "architecture": "cnn"}),
    (ModelType.audio, {"sample_rate": 16000, "n_features": 40, "hidden_size": 128, "rnn_type": "gru", "num_classes": 4}),
    (ModelType.classification, {"input_dim": 30, "num_classes": 2, "hidden_sizes": [64, 32]}),
    (ModelType.regression, {"input_dim": 8, "output_dim": 1}),
    (ModelType.diffusion, {"image_size": 64, "timesteps": 1000}),
    (ModelType.optimization, {"objective": "minimise cost", "num_variables": 12}),
    (ModelType.other, {"anything": "goes", "n": 3}),
])
def test_valid_metadata_per_type_is_kept(model_type, metadata):
    assert domain.validate_metadata(model_type, metadata) == metadata


def test_common_fields_from_seed_004_are_accepted_by_every_type():
    common = {"input_shape": [512], "output_shape": [10], "model_format": "onnx", "is_pretrained": True,
              "pretrained_source": "hub/bert", "quantization": {"enabled": True, "type": "int8", "speedup": 2.5}}
    for model_type in ModelType:
        assert domain.validate_metadata(model_type, common)["quantization"]["type"] == "int8"


@pytest.mark.parametrize("model_type, metadata, field", [
    (ModelType.transformer, {"d_model": 0}, "metadata.d_model"),
    (ModelType.transformer, {"d_model": 100, "num_heads": 12}, "metadata"),
    (ModelType.transformer, {"dropout": 1.5}, "metadata.dropout"),
    (ModelType.vision, {"image_size": "large"}, "metadata.image_size"),
    (ModelType.vision, {"vocab_size": 10}, "metadata.vocab_size"),
    (ModelType.audio, {"rnn_type": "transformer"}, "metadata.rnn_type"),
    (ModelType.classification, {"num_classes": 1}, "metadata.num_classes"),
    (ModelType.regression, {"quantization": {"type": "int3"}}, "metadata.quantization.type"),
])
def test_invalid_metadata_names_the_field(model_type, metadata, field):
    with pytest.raises(ValidationFailed) as caught:
        domain.validate_metadata(model_type, metadata)
    assert field in fields(caught.value)


def test_divisibility_error_says_why():
    with pytest.raises(ValidationFailed, match="divisible"):
        domain.validate_metadata(ModelType.transformer, {"d_model": 100, "num_heads": 12})


def test_tags_are_checked():
    assert domain.validate_tags({"team": "nlp", "stage/env": "prod"}) == {"team": "nlp", "stage/env": "prod"}
    with pytest.raises(ValidationFailed) as caught:
        domain.validate_tags({"bad key": "x", "ok": "y" * 300})
    assert fields(caught.value) == ["tags.bad key", "tags.ok"]
    with pytest.raises(ValidationFailed):
        domain.validate_tags({f"k{i}": "v" for i in range(51)})


def test_merge_patch_follows_rfc_7386():
    current = {"a": 1, "b": {"c": 2, "d": 3}, "e": 4}
    assert domain.merge_patch(current, {"a": None, "b": {"c": None, "x": 1}, "f": [1]}) == {
        "b": {"d": 3, "x": 1}, "e": 4, "f": [1]}


def registered() -> domain.Model:
    model, _ = domain.register(
        Registration(name="m", type=ModelType.vision, framework="pytorch", metadata={"image_size": 28}),
        model_id=uuid.uuid4(), actor="alice", now=NOW)
    return model


def test_register_defaults_owner_to_actor_and_emits_full_state():
    model, event = domain.register(Registration(name="m", type=ModelType.audio, framework="pytorch"),
                                   model_id=uuid.uuid4(), actor="alice", now=NOW)
    assert model.owner == "alice" and model.revision == 1
    assert event.model_id == model.id and event.type == "audio" and event.created_at == NOW


def test_update_without_change_emits_nothing():
    model = registered()
    same, event = domain.update(model, {"metadata": {"image_size": 28}, "description": ""}, now=NOW)
    assert event is None and same is model


def test_update_reports_what_changed_and_revalidates_merged_metadata():
    model = registered()
    updated, event = domain.update(model, {"metadata": {"num_classes": 10}, "task": "ocr"}, now=NOW)
    assert updated.metadata == {"image_size": 28, "num_classes": 10} and updated.revision == 2
    assert event.changed == ["metadata", "task"]
    with pytest.raises(ValidationFailed):
        domain.update(model, {"metadata": {"image_size": -1}}, now=NOW)
    with pytest.raises(ValidationFailed):
        domain.update(model, {"framework": None}, now=NOW)


def test_delete_marks_the_model_and_emits():
    model = registered()
    deleted, event = domain.delete(model, now=NOW)
    assert deleted.deleted_at == NOW and event.model_id == model.id
