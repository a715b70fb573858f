"""Training recipes: cold start, rejection sampling, GRPO on verl (importable as agentrm.train)."""
