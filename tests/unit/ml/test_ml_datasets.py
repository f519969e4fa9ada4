"""Offline datasets: shapes match descriptors, stable content hashes, leakage-free scaling, matching configs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from libs.ml.datasets import (
    COMPATIBLE_MODEL_TYPES,
    DATASETS,
    DatasetError,
    encode_text,
    load_dataset,
    stratified_split,
    suggest_config,
)
from libs.ml.zoo import build_model

PAIRS = [(name, model_type) for name in DATASETS for model_type in COMPATIBLE_MODEL_TYPES[name]]


@pytest.mark.parametrize(("name", "model_type"), PAIRS)
def test_shapes_match_the_descriptor(name: str, model_type: str) -> None:
    dataset = load_dataset(name, for_model_type=model_type)
    d = dataset.descriptor
    assert d["name"] == name and d["representation"] == model_type
    for split in ("train", "val", "test"):
        inputs, targets = dataset.split(split).tensors
        assert len(inputs) == len(targets) == d[f"n_{split}"]
        assert list(inputs.shape[1:]) == d["input_shape"]
        assert str(inputs.dtype).removeprefix("torch.") == d["input_dtype"]
        if d["task"] == "classification":
            assert targets.dtype == torch.int64
            assert set(targets.unique().tolist()) == set(range(d["num_classes"]))  # stratified: all classes
        else:
            assert targets.shape[1:] == (d["output_dim"],)
    total = d["n_train"] + d["n_val"] + d["n_test"]
    assert abs(d["n_train"] / total - 0.70) < 0.02 and abs(d["n_test"] / total - 0.15) < 0.02
    assert d["split"]["seed"] == 0


@pytest.mark.parametrize("name", DATASETS)
def test_content_hash_is_stable_and_depends_on_the_seed(name: str) -> None:
    first, second = load_dataset(name, seed=3), load_dataset(name, seed=3)
    assert first.content_hash == second.content_hash
    assert len(first.content_hash) == 64 and int(first.content_hash, 16) >= 0
    for split in ("train", "val", "test"):
        for a, b in zip(first.split(split).tensors, second.split(split).tensors):
            assert torch.equal(a, b)
    assert load_dataset(name, seed=4).content_hash != first.content_hash


def test_text_hash_is_pinned() -> None:
    """Integer-only pipeline: this exact hash must come out on every machine; a change here is a data change."""
    assert load_dataset("text").content_hash == "1ec265abd47c71a9c3c00f247e0f1f77b7f0fa6317ece9b3cbe61c9df8e7a79d"


def test_representation_changes_the_hash() -> None:
    assert load_dataset("digits", for_model_type="vision").content_hash != load_dataset("digits").content_hash


def test_digits_for_vision_are_images_in_unit_range() -> None:
    inputs = load_dataset("digits", for_model_type="vision").train.tensors[0]
    assert inputs.shape[1:] == (1, 8, 8)
    assert inputs.min() >= 0.0 and inputs.max() <= 1.0 and inputs.max() > 0.9


@pytest.mark.parametrize("name", ["digits", "wine", "breast_cancer", "diabetes"])
def test_tabular_features_are_standardised_with_train_statistics_only(name: str) -> None:
    dataset = load_dataset(name)
    train = dataset.train.tensors[0].double()
    varying = train.std(dim=0, unbiased=False) > 0
    assert train.mean(dim=0).abs().max() < 1e-5
    assert torch.allclose(train.std(dim=0, unbiased=False)[varying], torch.ones(int(varying.sum()), dtype=torch.float64), atol=1e-4)
    # Held-out splits were scaled with train statistics, so they are *not* exactly centred themselves.
    assert dataset.test.tensors[0].double().mean(dim=0).abs().max() > 1e-3


def test_stratified_split_is_a_disjoint_cover_with_class_proportions() -> None:
    labels = np.repeat(np.arange(3), [100, 60, 40])
    train, val, test = stratified_split(labels, seed=11)
    everything = np.concatenate([train, val, test])
    assert len(everything) == len(labels) and len(np.unique(everything)) == len(labels)
    for split in (val, test):
        assert np.bincount(labels[split]).tolist() == [15, 9, 6]
    again = stratified_split(labels, seed=11)
    assert all(np.array_equal(x, y) for x, y in zip((train, val, test), again))
    assert not np.array_equal(stratified_split(labels, seed=12)[2], test)


def test_text_descriptor_exposes_vocabulary_and_length() -> None:
    dataset = load_dataset("text")
    d = dataset.descriptor
    tokens = dataset.train.tensors[0]
    assert d["vocab_size"] == len(d["vocab"]) and d["vocab"][:2] == ["<pad>", "<unk>"]
    assert tokens.shape[1] == d["max_seq_len"]
    assert tokens.max() < d["vocab_size"] and (tokens == 0).any() and (tokens == 1).any()
    encoded = encode_text(["The spicy SOUP alice"], d["vocab"], d["max_seq_len"])
    vocab = d["vocab"]
    assert encoded[0, :4].tolist() == [vocab.index("the"), vocab.index("spicy"), vocab.index("soup"), 1]
    assert encoded[0, 4:].eq(0).all()


def test_tones_frames_are_per_bin_standardised() -> None:
    dataset = load_dataset("tones")
    d = dataset.descriptor
    frames = dataset.train.tensors[0]
    assert frames.shape[1:] == (d["n_frames"], d["n_features"])
    assert frames.double().mean(dim=(0, 1)).abs().max() < 1e-5


@pytest.mark.parametrize(("name", "model_type"), PAIRS)
def test_suggested_config_builds_a_model_that_accepts_the_data(name: str, model_type: str) -> None:
    dataset = load_dataset(name, for_model_type=model_type)
    model = build_model(model_type, suggest_config(model_type, dataset)).eval()
    inputs, _ = dataset.train[:5]
    with torch.no_grad():
        output = model(inputs)
    expected = dataset.descriptor["num_classes"] or dataset.descriptor["output_dim"]
    assert output.shape == (5, expected)


def test_incompatible_requests_are_rejected() -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet")
    with pytest.raises(DatasetError, match="cannot feed a 'vision' model"):
        load_dataset("wine", for_model_type="vision")
    with pytest.raises(DatasetError, match="for_model_type='vision'"):
        suggest_config("vision", load_dataset("digits"))
