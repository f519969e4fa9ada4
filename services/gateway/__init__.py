"""Gateway: the single entry point. Authenticates API keys, authorises by role, rate-limits, honours
Idempotency-Key, and forwards to the owning service's internal API."""
