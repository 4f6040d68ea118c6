"""AWS backends for the SageMaker stack, as plain boto3 logic (no ZenML).

- ``clients``: boto3 clients from the environment/profile/role (``AWS_ENDPOINT_URL`` is
  honoured), bounded retries with backoff for throttling, error translation, redaction;
- ``feature_store`` + ``athena``: SageMaker Feature Store ingest and the offline-store read;
- ``packaging``: the model.tar.gz our image serves, and the containers that serve it;
- ``registry``: SageMaker Model Registry (model package groups and packages);
- ``endpoint``: SageMaker endpoints, rollback and Application Auto Scaling;
- ``sns``: failure alerts; ``cleanup``: removing what the stack created; ``iam``: the
  policy documents in ``stacks/iam`` and a small evaluator for them.

The ZenML flavors in ``stacks/flavors/`` are thin wrappers around these modules.
"""
