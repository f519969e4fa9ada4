"""What a training request may ask for: hyperparameters validated by libs.ml.trainer.Hyperparameters, a
dataset that fits the model type, and the architecture completed from the model's metadata plus what the
dataset needs (libs.ml.datasets.suggest_config)."""
from __future__ import annotations

import pytest

from libs.kit.errors import ValidationFailed
from libs.ml.datasets import load_dataset, suggest_config
from libs.ml.zoo import build_model, resolve_config
from services.training_scheduler import domain
from services.training_scheduler.handlers import _dataset_profile


def suggested(dataset: str, model_type: str) -> dict:
    return suggest_config(model_type, load_dataset(dataset, for_model_type=model_type))


def fields(exc: ValidationFailed) -> list[str]:
    return [e.field for e in exc.errors]


# -- hyperparameters ---------------------------------------------------------------------------------


def test_defaults_fill_in_what_the_request_leaves_out():
    hp = domain.validate_hyperparameters({"epochs": 4}, pool="cpu")
    assert hp.epochs == 4 and hp.batch_size == 64 and hp.optimizer == "adam"


@pytest.mark.parametrize("raw, field", [
    ({"learning_rate": -1}, "hyperparameters.learning_rate"),
    ({"learning_rate": "fast"}, "hyperparameters.learning_rate"),
    ({"epochs": 0}, "hyperparameters.epochs"),
    ({"optimizer": "lbfgs"}, "hyperparameters.optimizer"),
    ({"colour": "red"}, "hyperparameters.colour"),
    ({"scheduler": "step", "step_size": 20, "epochs": 5}, "hyperparameters"),
    ({"device": "cuda"}, "hyperparameters.device"),  # on the cpu pool
])
def test_bad_hyperparameters_name_their_field(raw, field):
    with pytest.raises(ValidationFailed) as refused:
        domain.validate_hyperparameters(raw, pool="cpu")
    assert refused.value.status == 422
    assert fields(refused.value)[0] == field


def test_cuda_is_fine_on_the_gpu_pool():
    assert domain.validate_hyperparameters({"device": "cuda"}, pool="gpu").device == "cuda"


def test_monitoring_accuracy_needs_a_classification_dataset():
    hp = domain.validate_hyperparameters({"monitor": "val_accuracy"}, pool="cpu")
    domain.check_monitor(hp, "classification")
    with pytest.raises(ValidationFailed) as refused:
        domain.check_monitor(hp, "regression")
    assert fields(refused.value) == ["hyperparameters.monitor"]


# -- datasets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset, model_type", [
    ("imagenet", "vision"),  # unknown
    ("wine", "vision"),  # does not fit
    ("text", "audio"),
    ("digits", "diffusion"),  # the zoo cannot train the type at all
])
def test_a_dataset_that_cannot_feed_the_model_type_is_refused(dataset, model_type):
    with pytest.raises(ValidationFailed) as refused:
        domain.check_dataset(dataset, model_type)
    assert fields(refused.value) == ["dataset"]


@pytest.mark.parametrize("dataset, model_type", [
    ("digits", "vision"), ("digits", "classification"), ("wine", "classification"), ("diabetes", "regression"),
    ("tones", "audio"), ("text", "transformer"),
])
def test_compatible_pairs_pass(dataset, model_type):
    domain.check_dataset(dataset, model_type)


# -- architecture ------------------------------------------------------------------------------------


def test_missing_fields_come_from_the_dataset():
    config = domain.complete_architecture("vision", {}, suggested("digits", "vision"), dataset="digits")
    assert config == {"image_size": 8, "image_channels": 1, "num_classes": 10, "base_channels": 16, "architecture": "cnn"}


def test_the_model_metadata_wins_where_the_data_does_not_decide():
    metadata = {"image_size": 8, "image_channels": 1, "num_classes": 10, "base_channels": 4, "license": "mit",
                "input_shape": [1, 8, 8]}
    config = domain.complete_architecture("vision", metadata, suggested("digits", "vision"), dataset="digits")
    assert config["base_channels"] == 4
    assert "license" not in config and "input_shape" not in config  # descriptive metadata is not architecture
    assert config == resolve_config("vision", config)
    model = build_model("vision", config)  # the result builds
    assert model.config == config


def test_a_wider_head_or_vocabulary_than_the_data_needs_is_fine():
    text = suggested("text", "transformer")
    config = domain.complete_architecture(
        "transformer", {"vocab_size": text["vocab_size"] + 100, "max_seq_len": 64, "num_classes": 8},
        text, dataset="text")
    assert config["vocab_size"] == text["vocab_size"] + 100 and config["num_classes"] == 8


@pytest.mark.parametrize("model_type, dataset, metadata, field", [
    ("vision", "digits", {"image_size": 28}, "metadata.image_size"),
    ("vision", "digits", {"image_channels": 3}, "metadata.image_channels"),
    ("vision", "digits", {"num_classes": 5}, "metadata.num_classes"),
    ("classification", "wine", {"input_dim": 64}, "metadata.input_dim"),
    ("regression", "diabetes", {"output_dim": 3}, "metadata.output_dim"),
    ("transformer", "text", {"max_seq_len": 8}, "metadata.max_seq_len"),
    ("audio", "tones", {"n_features": 16}, "metadata.n_features"),
])
def test_metadata_that_contradicts_the_data_is_refused_naming_the_field(model_type, dataset, metadata, field):
    with pytest.raises(ValidationFailed) as refused:
        domain.complete_architecture(model_type, metadata, suggested(dataset, model_type), dataset=dataset)
    assert fields(refused.value) == [field]
    assert dataset in refused.value.detail


@pytest.mark.parametrize("model_type, dataset, metadata, field", [
    ("vision", "digits", {"architecture": "vit"}, "metadata.architecture"),  # the zoo only has a CNN
    ("transformer", "text", {"d_model": 30, "num_heads": 4}, "metadata.d_model"),
    ("audio", "tones", {"rnn_type": "transformer"}, "metadata.rnn_type"),
    ("classification", "wine", {"hidden_sizes": [64, 0]}, "metadata.hidden_sizes"),
])
def test_a_config_the_zoo_rejects_is_refused_naming_the_field(model_type, dataset, metadata, field):
    with pytest.raises(ValidationFailed) as refused:
        domain.complete_architecture(model_type, metadata, suggested(dataset, model_type), dataset=dataset)
    assert fields(refused.value) == [field]


def test_the_dataset_profile_is_the_suggested_config_and_task():
    config, task = _dataset_profile("diabetes", "regression")
    assert task == "regression" and config["input_dim"] == 10 and config["output_dim"] == 1
