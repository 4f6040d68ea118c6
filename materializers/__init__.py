"""ZenML materializers for our own artifact types."""
