"""Pure ML logic for Cairn: model zoo, artifact format, datasets, training, evaluation and comparison.

Nothing in this package talks to databases, brokers or object stores; the training worker and the
evaluation service call it and take care of I/O. Modules:

- :mod:`libs.ml.zoo` builds ``torch.nn.Module`` instances from a model type and its registry metadata.
- :mod:`libs.ml.artifact` is the weights file format (safe to load: ``weights_only=True``).
- :mod:`libs.ml.datasets` offers small offline datasets with stable content hashes.
- :mod:`libs.ml.device` picks a device and sets up CUDA mixed precision.
- :mod:`libs.ml.trainer` is the resumable, cancellable training loop.
- :mod:`libs.ml.evaluate` measures quality, latency, throughput, size and FLOPs on a held-out split.
- :mod:`libs.ml.compare` compares two model versions and renders an HTML report.
"""
