"""Evaluation service: measures every version's weights on a held-out split (quality, latency, throughput,
size, FLOPs, layer structure), pushes the metrics to the version service, and compares two versions."""
