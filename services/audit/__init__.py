"""Audit service: an append-only, hash-chained log of every event on every cairn topic."""
