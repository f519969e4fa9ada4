"""Training scheduler: owns training jobs. Accepts requests, dispatches job messages to worker pools,
is the single writer of job state through the worker protocol (claim, heartbeat, progress, complete,
fail), retries with back-off, dead-letters exhausted jobs and publishes live progress to Redis."""
