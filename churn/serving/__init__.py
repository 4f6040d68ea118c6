"""The inference server: the SageMaker hosting contract (GET /ping, POST /invocations)."""
