"""A downstream deployer: subscribes to ``cairn.lifecycle.v1``, keeps what is live per model and
environment (and the traffic weights during a rollout), and downloads and verifies each artifact
that goes live. Run it with ``python -m examples.deployer --help``."""
