"""Version service: owns model versions (semver, metadata, tags, aliases, retention) and their artifacts
(content-addressed weights in the folder store or S3, expiring download links)."""
