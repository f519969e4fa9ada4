"""Kafka topic names. One topic per aggregate, keyed by model id so one model's events stay ordered."""

MODELS = "cairn.models.v1"
VERSIONS = "cairn.versions.v1"
LIFECYCLE = "cairn.lifecycle.v1"
TRAINING = "cairn.training.v1"
EVALUATION = "cairn.evaluation.v1"
SECURITY = "cairn.security.v1"

JOBS_TRAINING_PREFIX = "cairn.jobs.training."
DLQ_PREFIX = "cairn.dlq."

DOMAIN_TOPICS = (MODELS, VERSIONS, LIFECYCLE, TRAINING, EVALUATION, SECURITY)

#: Everything the audit log records: all cairn topics except dead letters (which failed validation).
AUDIT_PATTERN = r"^cairn\.(?!dlq\.).+"


def training_jobs(pool: str) -> str:
    """Job topic of one resource pool (``gpu``, ``cpu``)."""
    return f"{JOBS_TRAINING_PREFIX}{pool}"


def dead_letters(consumer_group: str) -> str:
    """Dead-letter topic of one consumer group."""
    return f"{DLQ_PREFIX}{consumer_group}"
