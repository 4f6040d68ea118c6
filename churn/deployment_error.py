"""The one error class of deployments, invocations, batches and cleanups that did not happen.

Raised by the plain deployment code (``churn.aws.endpoint``, ``churn.aws.deployment``) and by every
stack's deployer; ``stacks.contracts`` re-exports it (``churn/`` cannot import ``stacks``), so callers
catch one class on every stack.
"""

from __future__ import annotations


class DeploymentError(RuntimeError):
    """A deployment, invocation, batch or cleanup that did not happen; the previous model (if any) still serves.

    Every ``stacks.contracts.EndpointDeployer`` raises this class (the SageMaker one also wraps the AWS
    layer's other errors in it), so callers handle every stack alike.
    """
