"""ZenML steps, one per file. Each is a thin wrapper around plain functions in ``churn``."""
