"""Model zoo: every type builds, runs, round-trips through the artifact format; bad configs are named."""
from __future__ import annotations

import pytest
import torch

from libs.ml.artifact import load_artifact, save_artifact
from libs.ml.zoo import SUPPORTED_TYPES, ModelConfigError, build_model, example_input, resolve_config

CASES = {
    "vision-digits": ("vision", {"image_size": 8, "image_channels": 1, "num_classes": 10}),
    "vision-rgb28": ("vision", {"image_size": 28, "image_channels": 3, "num_classes": 5, "base_channels": 8}),
    "audio-lstm": ("audio", {"n_features": 32, "num_classes": 4}),
    "audio-bigru": (
        "audio",
        {"n_features": 12, "num_classes": 3, "rnn_type": "gru", "bidirectional": True, "num_layers": 2, "hidden_size": 16},
    ),
    "transformer": (
        "transformer",
        {"vocab_size": 100, "max_seq_len": 12, "d_model": 32, "num_heads": 4, "num_layers": 2, "d_ff": 64, "num_classes": 4},
    ),
    "classification": ("classification", {"input_dim": 13, "num_classes": 3, "dropout": 0.2}),
    "regression": ("regression", {"input_dim": 10, "output_dim": 2, "hidden_sizes": [16]}),
}


def _outputs(model_type: str, config: dict) -> int:
    return config.get("num_classes") or config.get("output_dim", 1)


@pytest.mark.parametrize("case", CASES)
def test_every_type_builds_and_runs_a_forward_pass(case: str) -> None:
    model_type, config = CASES[case]
    torch.manual_seed(0)
    model = build_model(model_type, config).eval()
    batch = example_input(model_type, config, batch=3)
    with torch.no_grad():
        output = model(batch)
    assert output.shape == (3, _outputs(model_type, config))
    assert torch.isfinite(output).all()
    assert model.model_type == model_type
    assert model.config == resolve_config(model_type, config)


@pytest.mark.parametrize("case", CASES)
def test_artifact_round_trip_gives_identical_outputs(case: str) -> None:
    model_type, config = CASES[case]
    torch.manual_seed(1)
    model = build_model(model_type, config).eval()
    batch = example_input(model_type, config, batch=4)

    loaded = load_artifact(save_artifact(model, model_type, config, extra={"note": case}))

    assert loaded.model_type == model_type
    assert loaded.config == model.config
    assert loaded.extra == {"note": case}
    assert not loaded.model.training
    with torch.no_grad():
        assert torch.equal(model(batch), loaded.model(batch))


def test_supported_types_are_exactly_the_registry_types() -> None:
    assert set(SUPPORTED_TYPES) == {"vision", "audio", "transformer", "classification", "regression"}


def test_defaults_are_filled_and_unknown_metadata_keys_dropped() -> None:
    resolved = resolve_config("vision", {"image_size": 8, "image_channels": 1, "num_classes": 10, "owner_note": "x"})
    assert resolved == {"image_size": 8, "image_channels": 1, "num_classes": 10, "base_channels": 16, "architecture": "cnn"}
    audio = resolve_config("audio", {"n_features": 4, "num_classes": 2})
    assert audio["hidden_size"] == 64 and audio["rnn_type"] == "lstm" and audio["bidirectional"] is False
    assert resolve_config("classification", {"input_dim": 3, "num_classes": 2})["hidden_sizes"] == [64, 64]
    assert resolve_config("regression", {"input_dim": 3})["output_dim"] == 1


def test_missing_vocab_size_is_named() -> None:
    config = dict(CASES["transformer"][1])
    del config["vocab_size"]
    with pytest.raises(ModelConfigError, match=r"transformer model needs metadata\.vocab_size"):
        build_model("transformer", config)


def test_d_model_not_divisible_by_num_heads_is_named() -> None:
    config = {**CASES["transformer"][1], "d_model": 30, "num_heads": 4}
    with pytest.raises(ModelConfigError, match=r"metadata\.d_model \(30\) must be divisible by metadata\.num_heads \(4\)"):
        build_model("transformer", config)


@pytest.mark.parametrize(
    ("model_type", "config", "field"),
    [
        ("vision", {"image_channels": 1, "num_classes": 10}, "image_size"),
        ("vision", {"image_size": 8, "image_channels": 1, "num_classes": 10, "architecture": "vit"}, "architecture"),
        ("audio", {"n_features": 8, "num_classes": 2, "rnn_type": "transformer"}, "rnn_type"),
        ("audio", {"n_features": 8, "num_classes": 2, "bidirectional": "yes"}, "bidirectional"),
        ("classification", {"input_dim": 0, "num_classes": 2}, "input_dim"),
        ("classification", {"input_dim": 4, "num_classes": True}, "num_classes"),
        ("classification", {"input_dim": 4, "num_classes": 2, "hidden_sizes": [8, -1]}, "hidden_sizes"),
        ("classification", {"input_dim": 4, "num_classes": 2, "dropout": 1.5}, "dropout"),
        ("regression", {"output_dim": 1}, "input_dim"),
    ],
)
def test_bad_fields_are_named(model_type: str, config: dict, field: str) -> None:
    with pytest.raises(ModelConfigError, match=rf"metadata\.{field}"):
        build_model(model_type, config)


def test_unknown_type_is_rejected() -> None:
    with pytest.raises(ModelConfigError, match="unsupported model type 'gan'"):
        build_model("gan", {})


def test_transformer_ignores_padding() -> None:
    """Padding id 0 is masked from attention and pooling: extra padding must not change the logits."""
    model_type, config = CASES["transformer"]
    torch.manual_seed(0)
    model = build_model(model_type, config).eval()
    tokens = torch.tensor([[5, 17, 42, 8]])
    padded = torch.tensor([[5, 17, 42, 8, 0, 0, 0, 0]])
    with torch.no_grad():
        assert torch.allclose(model(tokens), model(padded), atol=1e-5)
        all_padding = model(torch.zeros((2, 6), dtype=torch.long))
    assert torch.isfinite(all_padding).all()


def test_transformer_rejects_sequences_longer_than_max_seq_len() -> None:
    model_type, config = CASES["transformer"]
    model = build_model(model_type, config)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.ones((1, config["max_seq_len"] + 1), dtype=torch.long))
