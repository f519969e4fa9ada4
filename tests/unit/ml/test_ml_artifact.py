"""Artifact format: safe loading (no code execution), clear errors, description without knowing the type."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

from libs.ml.artifact import FORMAT, ArtifactError, describe_artifact, load_artifact, save_artifact
from libs.ml.zoo import build_model

VISION = {"image_size": 8, "image_channels": 1, "num_classes": 10, "base_channels": 8}


class _TouchOnUnpickle:
    """Unpickling this object runs code that creates ``marker`` - exactly what an attacker would ship."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_the_malicious_payload_really_executes_when_unpickled_unsafely(tmp_path: Path) -> None:
    """Guards the test below: proves the payload is live, so "marker absent" means it was blocked."""
    marker = tmp_path / "unsafe"
    torch.load(io.BytesIO(_torch_bytes(_TouchOnUnpickle(marker))), weights_only=False)
    assert marker.read_text() == "pwned"


@pytest.mark.parametrize("container", ["torch.save", "pickle", "inside-valid-artifact"])
def test_loading_a_code_executing_pickle_raises_and_does_not_execute(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    evil = _TouchOnUnpickle(marker)
    if container == "torch.save":
        data = _torch_bytes(evil)
    elif container == "pickle":
        data = pickle.dumps(evil)
    else:
        model = build_model("vision", VISION)
        data = _torch_bytes(
            {"format": FORMAT, "model_type": "vision", "config": model.config, "state_dict": model.state_dict(), "extra": {"x": evil}}
        )

    # Raw pickles are refused before any unpickling; zip archives by the weights-only unpickler.
    expected = "not a torch artifact" if container == "pickle" else "refusing to load"
    with pytest.raises(ArtifactError, match=expected):
        load_artifact(data)
    with pytest.raises(ArtifactError):
        describe_artifact(data)
    assert not marker.exists()


@pytest.mark.parametrize("data", [b"definitely not a zip or a pickle", b"", b"PK\x03\x04truncated zip"])
def test_garbage_bytes_are_not_a_torch_artifact(data: bytes) -> None:
    with pytest.raises(ArtifactError, match="not a torch artifact"):
        load_artifact(data)


def test_wrong_format_tag_is_reported() -> None:
    model = build_model("vision", VISION)
    data = _torch_bytes({"format": "someone.else/3", "model_type": "vision", "config": model.config, "state_dict": model.state_dict()})
    with pytest.raises(ArtifactError, match="wrong artifact format tag 'someone.else/3'"):
        load_artifact(data)


def test_plain_state_dict_is_not_an_artifact() -> None:
    with pytest.raises(ArtifactError, match="wrong artifact format tag None"):
        load_artifact(_torch_bytes(build_model("vision", VISION).state_dict()))


def test_state_dict_that_does_not_fit_the_config_is_reported() -> None:
    small = build_model("vision", VISION)
    data = _torch_bytes(
        {
            "format": FORMAT,
            "model_type": "vision",
            "config": {**VISION, "base_channels": 16},  # claims a wider network than the weights
            "state_dict": small.state_dict(),
            "extra": {},
        }
    )
    with pytest.raises(ArtifactError, match="state_dict does not match the vision architecture"):
        load_artifact(data)


def test_invalid_config_inside_artifact_is_reported() -> None:
    model = build_model("vision", VISION)
    data = _torch_bytes({"format": FORMAT, "model_type": "vision", "config": {"image_size": 8}, "state_dict": model.state_dict(), "extra": {}})
    with pytest.raises(ArtifactError, match=r"metadata\.image_channels"):
        load_artifact(data)


def test_save_rejects_config_that_disagrees_with_the_model() -> None:
    model = build_model("vision", VISION)
    with pytest.raises(ArtifactError, match="does not match the model's config"):
        save_artifact(model, "vision", {**VISION, "base_channels": 32})


def test_save_rejects_extra_values_weights_only_loading_would_refuse() -> None:
    model = build_model("vision", VISION)
    with pytest.raises(ArtifactError, match=r"extra\.tags holds a set"):
        save_artifact(model, "vision", VISION, extra={"tags": {"a", "b"}})


def test_describe_artifact_needs_no_type_knowledge() -> None:
    torch.manual_seed(0)
    model = build_model("audio", {"n_features": 8, "num_classes": 3, "hidden_size": 16})
    data = save_artifact(model, "audio", {"n_features": 8, "num_classes": 3, "hidden_size": 16}, extra={"run": 7})

    description = describe_artifact(data)

    assert description["model_type"] == "audio"
    assert description["config"]["rnn_type"] == "lstm"  # default resolved and stored
    assert description["parameter_count"] == sum(p.numel() for p in model.parameters())
    assert description["state_dict_bytes"] == sum(t.numel() * t.element_size() for t in model.state_dict().values())
    assert description["artifact_bytes"] == len(data)
    assert description["extra"] == {"run": 7}


def test_artifact_is_a_plain_weights_only_file() -> None:
    model = build_model("classification", {"input_dim": 4, "num_classes": 2})
    payload = torch.load(io.BytesIO(save_artifact(model, "classification", model.config)), weights_only=True)
    assert payload["format"] == FORMAT
    assert set(payload) == {"format", "model_type", "config", "state_dict", "extra"}
