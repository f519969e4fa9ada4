"""Registry service: owns models (name, type, framework, task, typed metadata, tags, owner)."""
