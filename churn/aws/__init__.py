"""AWS backends for the SageMaker stack, as plain boto3 logic (no ZenML).

- ``clients``: boto3 clients from the environment/profile/role (``AWS_ENDPOINT_URL`` is
  honoured), botocore's standard retries for every client in the process, error translation, redaction;
- ``feature_store`` (``FeatureGroupClient``) + ``athena``: SageMaker Feature Store ingest and the
  offline-store read; ``ingestion_manifests``: what each ingestion put, so a read can tell when the
  offline store has not caught up;
- ``packaging``: the model.tar.gz our image serves, and the containers that serve it;
- ``registry`` (``ModelPackageClient``): SageMaker Model Registry (model package groups and packages);
- ``endpoint`` (``SageMakerEndpoints``): SageMaker endpoints; ``deployment``: one deployment's phases
  (create or update, wait, roll back); ``autoscaling``: Application Auto Scaling for an endpoint;
- ``transform``: batch inference as a SageMaker Batch Transform job;
- ``autopilot_job``: SageMaker Autopilot (AutoML V2) as an AutoML engine; ``autopilot_transform``:
  what its best candidate becomes (containers, model, the batch-transform handle);
- ``sns``: failure alerts; ``cleanup``: removing what the stack created; ``iam``: the
  policy documents in ``stacks/iam``, filled in for a stack config; ``settings``: the stack config.

The ZenML flavors in ``stacks/flavors/`` are thin wrappers around these modules; the classes here are
named after what they wrap, so no name is a flavor's too.
"""
