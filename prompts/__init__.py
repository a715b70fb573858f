"""Jinja2 prompt templates (package data, importable as agentrm.prompts)."""
