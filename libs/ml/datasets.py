"""Offline datasets for training and evaluating zoo models (no network access needed).

:func:`load_dataset` returns a :class:`Dataset` whose ``train``/``val``/``test`` splits are
``torch.utils.data.TensorDataset`` objects of ``(inputs, targets)``:

- classification targets are ``int64`` class ids of shape ``(N,)``;
- regression targets are ``float32`` of shape ``(N, output_dim)``, standardised with train statistics.

Splits are stratified 70/15/15 with a seeded NumPy generator. Feature scaling always uses statistics of
the train split only, so nothing about val/test leaks into training. ``content_hash`` is a SHA-256 over
the exact little-endian bytes of every split (plus name, representation and seed), so the registry can
tell whether two models saw the same data.

Names (:data:`DATASETS`):

- ``digits``: sklearn 8x8 handwritten digits, 10 classes; flat 64 standardised features for
  ``classification`` or ``(1, 8, 8)`` images in [0, 1] for ``vision``.
- ``wine``, ``breast_cancer``: sklearn tabular classification, standardised.
- ``diabetes``: sklearn tabular regression (disease progression), for ``regression`` models.
- ``tones``: synthetic audio clips (low tone, high tone, chirp, white noise) as log-magnitude STFT frames.
- ``text``: synthetic templated sentences about four topics, word-level token ids (0 = pad, 1 = unk).
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

DATASETS: tuple[str, ...] = ("digits", "wine", "breast_cancer", "diabetes", "tones", "text")
SPLIT_FRACTIONS: tuple[float, float, float] = (0.70, 0.15, 0.15)
SPLITS: tuple[str, ...] = ("train", "val", "test")

# Model types each dataset can feed; the first one is the representation used when none is asked for.
COMPATIBLE_MODEL_TYPES: dict[str, tuple[str, ...]] = {
    "digits": ("classification", "vision"),
    "wine": ("classification",),
    "breast_cancer": ("classification",),
    "diabetes": ("regression",),
    "tones": ("audio",),
    "text": ("transformer",),
}

# Bumped whenever generation or preprocessing changes, so old hashes can never match new bytes.
_HASH_VERSION = "cairn.datasets/1"
# Synthetic datasets are fixed objects like the sklearn ones: the split seed never changes their samples.
_GENERATOR_SEED = 20240601

PAD_ID, UNK_ID = 0, 1
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"


class DatasetError(ValueError):
    """Unknown dataset name, or a dataset that cannot feed the requested model type."""


@dataclass(frozen=True)
class Dataset:
    """Three ``TensorDataset`` splits of ``(inputs, targets)`` plus a JSON-able descriptor and content hash."""

    name: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    descriptor: dict[str, Any]
    content_hash: str

    @property
    def task(self) -> str:
        """``"classification"`` or ``"regression"``."""
        return self.descriptor["task"]

    @property
    def model_type(self) -> str:
        """The zoo model type this dataset's tensors are shaped for."""
        return self.descriptor["representation"]

    @property
    def num_classes(self) -> int | None:
        """Number of classes, or ``None`` for regression."""
        return self.descriptor["num_classes"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample (without the batch dimension)."""
        return tuple(self.descriptor["input_shape"])

    def split(self, name: str) -> TensorDataset:
        """Return the ``train``, ``val`` or ``test`` split by name."""
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        return getattr(self, name)


# --------------------------------------------------------------------------------------------------
# Splitting, scaling and hashing
# --------------------------------------------------------------------------------------------------


def stratified_split(strata: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a stratified 70/15/15 train/val/test split, each sorted ascending.

    Every stratum is shuffled with ``np.random.default_rng(seed)`` and cut by :data:`SPLIT_FRACTIONS`, so
    class proportions are the same in all three splits.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == stratum))
        n_val = int(round(len(members) * SPLIT_FRACTIONS[1]))
        n_test = int(round(len(members) * SPLIT_FRACTIONS[2]))
        parts[2].append(members[:n_test])
        parts[1].append(members[n_test : n_test + n_val])
        parts[0].append(members[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return train, val, test


def _standardise(train: np.ndarray, *others: np.ndarray, axis: tuple[int, ...] = (0,)) -> list[np.ndarray]:
    """Scale every array with the mean/std of ``train`` (float64 maths, float32 result)."""
    mean = train.mean(axis=axis, keepdims=True, dtype=np.float64)
    std = train.std(axis=axis, keepdims=True, dtype=np.float64)
    std[std == 0] = 1.0  # constant features (e.g. always-blank digit pixels) stay 0 instead of NaN
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)]


def _content_hash(name: str, representation: str, seed: int, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    digest.update(f"{_HASH_VERSION}|{name}|{representation}|seed={seed}".encode())
    for split in SPLITS:
        for role, array in zip(("x", "y"), arrays[split]):
            # Fix byte order explicitly so big-endian machines hash the same bytes.
            canonical = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
            digest.update(f"|{split}.{role}:{canonical.dtype.str}:{list(canonical.shape)}|".encode())
            digest.update(canonical.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Raw sources: each returns (features, targets, strata, info) before splitting
# --------------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    x: np.ndarray
    y: np.ndarray
    strata: np.ndarray
    info: dict[str, Any]
    # Turns the split raw features into model-ready float arrays (fit on train only).
    prepare: Callable[[np.ndarray, np.ndarray, np.ndarray], list[np.ndarray]]


def _sklearn_tabular(loader_name: str, representation: str) -> _Raw:
    from sklearn import datasets as sk

    bunch = getattr(sk, loader_name)()
    x, y = np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)
    names = [str(n) for n in getattr(bunch, "feature_names", [])]
    classes = [str(c) for c in bunch.target_names]
    info: dict[str, Any] = {
        "source": f"sklearn.datasets.{loader_name} (bundled with scikit-learn)",
        "task": "classification",
        "num_classes": len(classes),
        "class_names": classes,
    }
    if loader_name == "load_digits" and representation == "vision":
        info.update(
            feature_description="8x8 grey-scale digit images, 1 channel, pixel intensity / 16 in [0, 1]",
            preprocessing="divide by 16",
        )

        def prepare(*parts: np.ndarray) -> list[np.ndarray]:
            return [(p / 16.0).reshape(-1, 1, 8, 8).astype(np.float32) for p in parts]

    else:
        info.update(
            feature_description=f"{x.shape[1]} numeric features"
            + (f": {', '.join(names)}" if names and len(names) <= 32 else ""),
            preprocessing="standardised per feature with train-split mean and std",
        )

        def prepare(*parts: np.ndarray) -> list[np.ndarray]:
            return _standardise(*parts)

    info["label_description"] = f"class id in 0..{len(classes) - 1}: {', '.join(classes)}"
    return _Raw(x=x, y=y, strata=y, info=info, prepare=prepare)


def _diabetes() -> _Raw:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.float64).reshape(-1, 1)
    # Stratify on target quintiles (integer rank arithmetic, so no float ties decide the buckets).
    ranks = np.argsort(np.argsort(y[:, 0], kind="stable"), kind="stable")
    strata = ranks * 5 // len(ranks)
    info = {
        "source": "sklearn.datasets.load_diabetes (bundled with scikit-learn)",
        "task": "regression",
        "num_classes": None,
        "output_dim": 1,
        "feature_description": f"{x.shape[1]} numeric features: {', '.join(bunch.feature_names)}",
        "label_description": "disease progression one year after baseline, standardised with train mean/std",
        "preprocessing": "features and target standardised with train-split mean and std",
    }
    return _Raw(x=x, y=y, strata=strata, info=info, prepare=lambda *parts: _standardise(*parts))


# -- tones -----------------------------------------------------------------------------------------

TONE_CLASSES = ("low_tone", "high_tone", "chirp", "white_noise")
TONE_SAMPLE_RATE = 4000
TONE_FRAME = 64  # samples per frame (16 ms); hop = frame, so a 1024-sample clip gives 16 frames
TONE_CLIP = 1024
TONE_FEATURES = 32  # FFT bins 1..32 of a 64-point frame (DC dropped): 62.5 Hz .. 2 kHz
TONES_PER_CLASS = 150


def _tone_clip(label: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(TONE_CLIP) / TONE_SAMPLE_RATE
    amplitude = rng.uniform(0.3, 1.0)
    phase = rng.uniform(0, 2 * np.pi)
    if label == 0:
        signal = np.sin(2 * np.pi * rng.uniform(150, 450) * t + phase)
    elif label == 1:
        signal = np.sin(2 * np.pi * rng.uniform(1100, 1700) * t + phase)
    elif label == 2:
        start, end = rng.uniform(200, 500), rng.uniform(1200, 1800)
        if rng.random() < 0.5:
            start, end = end, start  # up- and down-chirps, so direction alone is not the cue
        duration = TONE_CLIP / TONE_SAMPLE_RATE
        signal = np.sin(2 * np.pi * (start * t + (end - start) * t**2 / (2 * duration)) + phase)
    else:
        signal = rng.standard_normal(TONE_CLIP)
    background = rng.normal(0.0, rng.uniform(0.1, 0.8), TONE_CLIP)
    return amplitude * signal + background


def _frame_features(clip: np.ndarray) -> np.ndarray:
    frames = clip.reshape(-1, TONE_FRAME) * np.hanning(TONE_FRAME)
    magnitude = np.abs(np.fft.rfft(frames, axis=1))[:, 1 : TONE_FEATURES + 1]
    # Rounding to 1e-4 absorbs last-bit differences between libm/FFT builds on other machines.
    return np.round(np.log1p(magnitude), 4)


def _tones() -> _Raw:
    rng = np.random.default_rng(_GENERATOR_SEED)
    labels = np.repeat(np.arange(len(TONE_CLASSES)), TONES_PER_CLASS)
    x = np.stack([_frame_features(_tone_clip(int(label), rng)) for label in labels])
    info = {
        "source": f"synthetic tone generator (numpy seed {_GENERATOR_SEED})",
        "task": "classification",
        "num_classes": len(TONE_CLASSES),
        "class_names": list(TONE_CLASSES),
        "sample_rate": TONE_SAMPLE_RATE,
        "n_frames": TONE_CLIP // TONE_FRAME,
        "n_features": TONE_FEATURES,
        "feature_description": (
            f"{TONE_CLIP // TONE_FRAME} frames x {TONE_FEATURES} log(1+|FFT|) bins of 64-sample Hann-windowed "
            f"frames at {TONE_SAMPLE_RATE} Hz (bins 62.5 Hz apart)"
        ),
        "label_description": "0 low tone 150-450 Hz, 1 high tone 1.1-1.7 kHz, 2 linear chirp, 3 white noise",
        "preprocessing": "per-bin standardisation with train-split mean and std over all frames",
    }
    return _Raw(x=x, y=labels.astype(np.int64), strata=labels, info=info, prepare=lambda *p: _standardise(*p, axis=(0, 1)))


# -- text ------------------------------------------------------------------------------------------

TEXT_CLASSES = ("sports", "weather", "food", "technology")
TEXT_MAX_SEQ_LEN = 20
SENTENCES_PER_CLASS = 200

_TOPIC_WORDS: dict[str, dict[str, list[str]]] = {
    "sports": {
        "noun": ["team", "match", "goal", "coach", "striker", "league", "referee", "stadium"],
        "verb": ["won", "scored", "lost", "defended", "trained", "tackled"],
        "adj": ["fast", "defensive", "winning", "athletic", "injured", "offside"],
    },
    "weather": {
        "noun": ["rain", "storm", "forecast", "wind", "snow", "cloud", "sunshine", "temperature"],
        "verb": ["poured", "cooled", "froze", "drizzled", "cleared", "flooded"],
        "adj": ["cloudy", "humid", "freezing", "stormy", "sunny", "windy"],
    },
    "food": {
        "noun": ["soup", "recipe", "bread", "chef", "dessert", "salad", "kitchen", "spice"],
        "verb": ["baked", "cooked", "tasted", "seasoned", "roasted", "served"],
        "adj": ["delicious", "spicy", "crispy", "sweet", "savory", "fresh"],
    },
    "technology": {
        "noun": ["software", "laptop", "network", "robot", "server", "chip", "app", "algorithm"],
        "verb": ["crashed", "compiled", "upgraded", "booted", "encrypted", "deployed"],
        "adj": ["digital", "wireless", "faster", "buggy", "encrypted", "smart"],
    },
}
_FILLER = ["really", "very", "quite", "today", "yesterday", "again", "honestly", "maybe", "still", "now"]
_SHARED = ["people", "news", "story", "report", "everyone", "week", "morning", "city"]
# Names are deliberately left out of the vocabulary: they exercise the <unk> id like real OOV words.
_NAMES = ["alice", "bob", "carol", "dmitri", "eva", "farid", "grace", "hiro"]
_TEMPLATES = [
    "the {adj} {noun} {verb} {filler}",
    "{name} said the {noun} was {adj} this {shared}",
    "i think the {noun} {verb} and it was {filler} {adj}",
    "{filler} the {shared} is about a {adj} {noun}",
    "our {noun} {verb} {filler} after the {adj} {noun}",
    "{name} and {name} {verb} the {noun} in the {shared}",
    "what a {adj} {noun} {filler} said {name}",
    "the {shared} {verb} because of the {noun} {filler}",
]
_TEMPLATE_WORDS = sorted({w for t in _TEMPLATES for w in re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", t))})


def text_vocabulary() -> list[str]:
    """The fixed word-level vocabulary of the ``text`` dataset: ``<pad>``, ``<unk>``, then sorted words."""
    words = set(_FILLER) | set(_SHARED) | set(_TEMPLATE_WORDS)
    for lexicon in _TOPIC_WORDS.values():
        for slot in lexicon.values():
            words |= set(slot)
    return [PAD_TOKEN, UNK_TOKEN, *sorted(words)]


def encode_text(sentences: Sequence[str], vocab: Sequence[str], max_seq_len: int) -> torch.Tensor:
    """Tokenise sentences into a ``LongTensor`` ``(N, max_seq_len)``: lower-cased words, unknown → 1,
    truncated to ``max_seq_len`` and right-padded with 0. Use the dataset descriptor's ``vocab``."""
    index = {word: i for i, word in enumerate(vocab)}
    encoded = np.zeros((len(sentences), max_seq_len), dtype=np.int64)
    for row, sentence in enumerate(sentences):
        ids = [index.get(word, UNK_ID) for word in re.findall(r"[a-z']+", sentence.lower())][:max_seq_len]
        encoded[row, : len(ids)] = ids
    return torch.from_numpy(encoded)


def _sentence(topic: str, rng: np.random.Generator) -> str:
    template = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    lexicon = _TOPIC_WORDS[topic]
    # One topic slot in six borrows a word from another topic, so the task is not a pure lookup table.
    confuser = TEXT_CLASSES[rng.integers(len(TEXT_CLASSES))]

    def fill(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot in lexicon:
            source = _TOPIC_WORDS[confuser] if rng.random() < 1 / 6 else lexicon
            return str(rng.choice(source[slot]))
        pool = {"filler": _FILLER, "shared": _SHARED, "name": _NAMES}[slot]
        return str(rng.choice(pool))

    words = re.sub(r"\{(\w+)\}", fill, template).split()
    # Optional trailing filler varies sentence length, so padding and masking are exercised.
    words += [str(rng.choice(_FILLER)) for _ in range(int(rng.integers(0, 5)))]
    return " ".join(words)


def _text() -> _Raw:
    rng = np.random.default_rng(_GENERATOR_SEED)
    labels = np.repeat(np.arange(len(TEXT_CLASSES)), SENTENCES_PER_CLASS)
    sentences = [_sentence(TEXT_CLASSES[label], rng) for label in labels]
    vocab = text_vocabulary()
    tokens = encode_text(sentences, vocab, TEXT_MAX_SEQ_LEN).numpy()
    info = {
        "source": f"synthetic templated sentences (numpy seed {_GENERATOR_SEED})",
        "task": "classification",
        "num_classes": len(TEXT_CLASSES),
        "class_names": list(TEXT_CLASSES),
        "vocab_size": len(vocab),
        "max_seq_len": TEXT_MAX_SEQ_LEN,
        "vocab": vocab,
        "feature_description": (
            f"word ids, right-padded to {TEXT_MAX_SEQ_LEN} with {PAD_ID}; {UNK_ID} = unknown word; "
            "tokenise new text with libs.ml.datasets.encode_text and this vocab"
        ),
        "label_description": f"topic id: {', '.join(f'{i} {c}' for i, c in enumerate(TEXT_CLASSES))}",
        "preprocessing": "lower-case word split, fixed vocabulary",
    }
    # Token ids are categorical: no scaling.
    return _Raw(x=tokens, y=labels.astype(np.int64), strata=labels, info=info, prepare=lambda *parts: list(parts))


def _raw(name: str, representation: str) -> _Raw:
    if name == "digits":
        return _sklearn_tabular("load_digits", representation)
    if name == "wine":
        return _sklearn_tabular("load_wine", representation)
    if name == "breast_cancer":
        return _sklearn_tabular("load_breast_cancer", representation)
    if name == "diabetes":
        return _diabetes()
    if name == "tones":
        return _tones()
    return _text()


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def load_dataset(name: str, *, seed: int = 0, for_model_type: str | None = None) -> Dataset:
    """Load dataset ``name`` split with ``seed``, shaped for ``for_model_type`` (default: its natural type).

    Raises :class:`DatasetError` for an unknown name or a model type the dataset cannot feed (see
    :data:`COMPATIBLE_MODEL_TYPES`).
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; available: {list(DATASETS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer (got {seed!r})")
    compatible = COMPATIBLE_MODEL_TYPES[name]
    representation = for_model_type or compatible[0]
    if representation not in compatible:
        raise DatasetError(f"dataset {name!r} cannot feed a {representation!r} model; it fits {list(compatible)}")

    raw = _raw(name, representation)
    train_idx, val_idx, test_idx = stratified_split(raw.strata, seed)
    xs = raw.prepare(raw.x[train_idx], raw.x[val_idx], raw.x[test_idx])
    ys = [raw.y[idx] for idx in (train_idx, val_idx, test_idx)]
    info = dict(raw.info)
    if info["task"] == "regression":
        # Standardising the target keeps MSE on the scale of 1, so default learning rates work.
        mean, std = float(ys[0].mean()), float(ys[0].std()) or 1.0
        ys = [((y - mean) / std).astype(np.float32) for y in ys]
        info.update(target_mean=mean, target_std=std)
    arrays = {split: (x, y) for split, x, y in zip(SPLITS, xs, ys)}

    descriptor = {
        "name": name,
        "representation": representation,
        **info,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "input_shape": list(xs[0].shape[1:]),
        "input_dtype": str(xs[0].dtype),
        "target_dtype": str(ys[0].dtype),
        "split": {"seed": seed, "fractions": list(SPLIT_FRACTIONS), "stratified": True},
    }
    splits = {split: TensorDataset(torch.from_numpy(x), torch.from_numpy(y)) for split, (x, y) in arrays.items()}
    return Dataset(
        name=name,
        descriptor=descriptor,
        content_hash=_content_hash(name, representation, seed, arrays),
        **splits,
    )


def suggest_config(model_type: str, dataset: Dataset) -> dict[str, Any]:
    """A zoo config for ``model_type`` whose input/output sizes match ``dataset`` (small, CPU-friendly sizes).

    Raises :class:`DatasetError` when the dataset was not loaded for that model type.
    """
    d = dataset.descriptor
    if d["representation"] != model_type:
        raise DatasetError(
            f"dataset {d['name']!r} was loaded for {d['representation']!r} models; "
            f"load it with for_model_type={model_type!r} to get a matching config"
        )
    shape = d["input_shape"]
    if model_type == "vision":
        return {"image_size": shape[1], "image_channels": shape[0], "num_classes": d["num_classes"], "base_channels": 16}
    if model_type == "audio":
        return {"n_features": shape[1], "num_classes": d["num_classes"], "hidden_size": 64, "rnn_type": "gru"}
    if model_type == "transformer":
        return {
            "vocab_size": d["vocab_size"],
            "max_seq_len": d["max_seq_len"],
            "d_model": 64,
            "num_heads": 4,
            "num_layers": 2,
            "d_ff": 128,
            "num_classes": d["num_classes"],
            "dropout": 0.1,
        }
    if model_type == "regression":
        return {"input_dim": shape[0], "output_dim": d["output_dim"], "hidden_sizes": [64, 64]}
    return {"input_dim": shape[0], "num_classes": d["num_classes"], "hidden_sizes": [64, 64], "dropout": 0.0}
