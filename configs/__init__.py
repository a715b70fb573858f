"""Packaged YAML configs (importable as agentrm.configs)."""
