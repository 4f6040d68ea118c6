"""The model-deployer contract our deploy step, predict client and cleanup use.

Both our deployers (local daemon, SageMaker endpoint) manage endpoints by name rather
than as ZenML services, so they share this base: the endpoint methods are abstract, and
ZenML's service-based API is answered once, here, with a pointer to the real methods.

How an endpoint is served is the pipeline's ``churn.config.DeploySettings`` (instance type,
autoscaling: the spec's deploy keys), passed to ``deploy_bundle``. Each deployer names the
settings it applies (``HONOURED_SETTINGS``); ``unused_settings`` lists the others, which the
deploy step reports by name (the same pipeline config serves every stack).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from zenml.model_deployers.base_model_deployer import BaseModelDeployer

from churn.config import DEPLOY_KEYS, DeploySettings


class EndpointDeployer(BaseModelDeployer):
    HONOURED_SETTINGS: ClassVar[Tuple[str, ...]] = ()   # the DeploySettings keys this deployer applies

    @abstractmethod
    def deploy_bundle(self, endpoint_name: str, model_name: str, version: str, bundle_uri: str,
                      sha256: str, metadata: Optional[Dict[str, Any]] = None,
                      settings: Optional[DeploySettings] = None) -> Dict[str, Any]:
        """Serve a registered bundle at ``endpoint_name`` as ``settings`` say (defaults when None);
        the previous model keeps serving on failure."""

    def unused_settings(self) -> List[str]:
        """The deploy settings this deployer does not apply (they have no effect on this stack)."""
        return [key for key in DEPLOY_KEYS if key not in self.HONOURED_SETTINGS]

    @abstractmethod
    def endpoint_url(self, endpoint_name: str) -> Optional[str]:
        """Where the endpoint answers, or None when it is not running."""

    @abstractmethod
    def invoke(self, endpoint_name: str, body: bytes, content_type: str = "text/csv",
               accept: str = "text/csv", probabilities: bool = False) -> Any:
        """One request; the answer has ``status_code``, ``text`` and ``headers``."""

    @abstractmethod
    def list_endpoints(self) -> List[Dict[str, Any]]:
        """The endpoints this deployer manages."""

    @abstractmethod
    def delete_endpoint(self, endpoint_name: str) -> Any:
        """Stop and remove an endpoint."""

    def batch_predict(self, features: Any, bundle: Any, model_version: Dict[str, Any], location: str,
                      output_format: str, chunk_rows: int, run_id: str, *, instance_type: Optional[str] = None,
                      instance_count: int = 1) -> Dict[str, Any]:
        """Score ``features`` with ``bundle`` and write ``churn.batch.OUTPUT_COLUMNS`` to ``location``, atomically.

        ``model_version`` is the registry's (``model_name``, ``version``, ``model_source_uri``,
        ``bundle_sha256``). Returns ``{"rows", "location", "positive_rate", "scored_by", ...}``.
        This default scores in the step's process, in chunks streamed to the output;
        a deployer whose platform has a batch service overrides it (SageMaker: Batch
        Transform), and ignores nothing it is given: instance_type/instance_count are for those.
        """
        from churn.batch import score_to

        return score_to(bundle, features, location, output_format, chunk_rows, model_version["model_name"],
                        str(model_version["version"]), run_id)

    # -- ZenML's service-based deployer API: not used; our endpoints are not ZenML services --
    def perform_deploy_model(self, id, config, timeout=0):  # type: ignore[no-untyped-def]
        raise NotImplementedError("use deploy_bundle(); churn endpoints are managed by endpoint name, not as ZenML services")

    @staticmethod
    def get_model_server_info(service) -> Dict[str, Optional[str]]:  # type: ignore[no-untyped-def]
        return {}

    def perform_stop_model(self, service, timeout=0, force=False):  # type: ignore[no-untyped-def]
        raise NotImplementedError("use delete_endpoint(endpoint_name) or `python run.py cleanup`")

    def perform_start_model(self, service, timeout=0):  # type: ignore[no-untyped-def]
        raise NotImplementedError("use deploy_bundle()")

    def perform_delete_model(self, service, timeout=0, force=False):  # type: ignore[no-untyped-def]
        raise NotImplementedError("use delete_endpoint(endpoint_name) or `python run.py cleanup`")
