"""The typed artifacts the training steps hand each other (pydantic models), each with its dashboard view.

- :class:`FeatureLineage`: what ``source_features`` read (feature group, id range, as-of, SQL,
  rows, data fingerprint); it travels with the model into the bundle and the registry.
- :class:`ChampionScore`: the current champion's gate metric on this run's test set (``score_champion``).
- :class:`GateVerdict`: CheckModelQuality's outcome (computed once: ``churn.evaluation.check_quality``).
- :class:`Registration`: what ``register`` registered (or why not); ``deploy`` and the CLI read it.
- :class:`Deployment`: what ``deploy`` served (or why not).

The preprocessor travels as ``churn.preprocessing.Preprocessor`` itself
(``materializers/preprocessor_materializer.py``, its own ``to_dict``/``from_dict``) and the
AutoML settings as ``churn.automl.AutoMLSettings`` (a step parameter, which ZenML validates
into the dataclass), so neither is declared twice. Each model's :meth:`markdown` is what the
ZenML dashboard shows (``materializers/artifact_materializer.py``).

Length: one module for all typed step artifacts (five small models and their Markdown views), so a
reader sees every hand-off between steps in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, computed_field, model_validator


def _cell(value: Any) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(title: str, rows: Iterable[tuple[str, Any]], note: str = "") -> str:
    """A two-column Markdown table under a heading (the dashboard view of a typed artifact)."""
    lines = [f"### {title}", "", *([note, ""] if note else []), "| what | value |", "|---|---|"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in rows]
    return "\n".join(lines) + "\n"


class TypedArtifact(BaseModel):
    """Base of the typed artifacts: frozen, and shown on the dashboard as a table of its fields."""

    model_config = ConfigDict(frozen=True)

    def markdown(self) -> str:
        """The dashboard's view: a table of the fields."""
        title = (type(self).__doc__ or type(self).__name__).strip().splitlines()[0].rstrip(".")
        return markdown_table(title, self.model_dump(mode="json").items())


class FeatureLineage(TypedArtifact):
    """The feature query a model was trained on: the lineage it carries to the bundle and the registry."""

    feature_group: str
    customer_id_start: int
    customer_id_end: int
    as_of: str | None = None
    description: str
    sql: str
    rows: int
    data_fingerprint: str

    @classmethod
    def of_read(cls, query: Any, sql: str, frame: Any) -> FeatureLineage:
        """The lineage of one feature-store read.

        Args:
            query: The ``churn.feature_query.FeatureQuery`` that was run.
            sql: The SQL the store ran for it.
            frame: The records it returned (fingerprinted).

        Returns:
            The lineage record.
        """
        from churn.feature_query import fingerprint

        return cls(
            feature_group=query.feature_group,
            customer_id_start=query.customer_id_start,
            customer_id_end=query.customer_id_end,
            as_of=query.as_of,
            description=query.describe(),
            sql=sql,
            rows=len(frame),
            data_fingerprint=fingerprint(frame),
        )

    def bundle_info(self, mlflow_run_id: str | None = None) -> dict[str, Any]:
        """What a model bundle records about its training data and, when given, the MLflow run it was logged to."""
        keys = ("feature_group", "customer_id_start", "customer_id_end", "as_of", "description")
        info: dict[str, Any] = {
            "feature_query": self.model_dump(include=set(keys)),
            "data_fingerprint": self.data_fingerprint,
        }
        return {**info, "mlflow_run_id": mlflow_run_id} if mlflow_run_id else info

    def registry_tags(self) -> dict[str, str]:
        """The lineage tags a registered version carries."""
        return {
            "feature_group": self.feature_group,
            "customer_id_range": f"{self.customer_id_start}-{self.customer_id_end}",
            "as_of": self.as_of or "",
            "data_fingerprint": self.data_fingerprint,
            "feature_query_sql": self.sql,
        }

    def markdown(self) -> str:
        rows = [
            ("feature group", self.feature_group),
            ("customer ids", f"{self.customer_id_start}-{self.customer_id_end}"),
            ("as of", self.as_of or "latest"),
            ("rows read", self.rows),
            ("data fingerprint", self.data_fingerprint),
        ]
        return markdown_table("Feature lineage", rows, self.description) + f"\n```sql\n{self.sql}\n```\n"


class ChampionScore(TypedArtifact):
    """The current champion's gate metric on this run's test set: what a challenger must also reach."""

    model_name: str
    metric: str
    tolerance: float = 0.0
    version: str | None = None  # None: no champion yet (the registered model has no Approved version)
    value: float | None = None  # None: the metric does not apply to this test set (e.g. ROC-AUC on one class)
    sha256: str | None = None  # the verified bundle that was scored

    def describe(self) -> str:
        """One line: which version is the champion and what it scored (or that there is none)."""
        if self.version is None:
            return f"no champion yet: {self.model_name} has no Approved version"
        shown = "n/a" if self.value is None else f"{self.value:.4f}"
        return f"champion {self.model_name} version {self.version}: {self.metric} {shown} on this run's test set"

    def markdown(self) -> str:
        if self.version is None:
            return markdown_table("Champion", [("champion", f"none yet ({self.model_name} has no Approved version)")])
        rows = [
            ("champion", f"{self.model_name} version {self.version}"),
            ("bundle sha256", self.sha256),
            (f"{self.metric} on this test set", "n/a" if self.value is None else f"{self.value:.4f}"),
            ("tolerance", self.tolerance),
        ]
        return markdown_table("Champion", rows)


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


class GateVerdict(TypedArtifact):
    """Outcome of CheckModelQuality: register and deploy only when ``passed``.

    With ``compared_to_champion`` (the config's ``compare_to_champion``) the value was also held
    against the champion's on the same test set (``champion_value`` minus ``champion_tolerance``,
    plus it when lower is better); ``champion_version`` None then means there was no champion yet.
    ``meets_threshold`` / ``meets_champion`` are the two comparisons ``churn.evaluation.check_quality``
    made with the metric's direction from ``churn.metrics``; the message only words them.
    """

    passed: bool
    metric: str
    value: float | None
    threshold: float
    higher_is_better: bool = True
    compared_to_champion: bool = False
    champion_version: str | None = None
    champion_value: float | None = None
    champion_tolerance: float = 0.0
    meets_threshold: bool | None = None  # None: as ``passed`` (a verdict on the threshold alone)
    meets_champion: bool | None = None  # None: not held against a champion's number

    @computed_field  # type: ignore[prop-decorator]
    @property
    def message(self) -> str:
        """One line saying what was compared (the threshold, and the champion's number) and what follows from it."""
        passing, failing = (">=", "<") if self.higher_is_better else ("<=", ">")
        meets_threshold = self.passed if self.meets_threshold is None else self.meets_threshold
        clauses = [(meets_threshold, str(self.threshold))]
        if self.meets_champion is not None:
            sign = "-" if self.higher_is_better else "+"
            clauses.append(
                (
                    self.meets_champion,
                    f"champion v{self.champion_version} {_shown(self.champion_value)} {sign} {self.champion_tolerance}",
                )
            )
        joiner = " and " if len({meets for meets, _ in clauses}) == 1 else " but "
        line = (
            f"quality gate {'passed' if self.passed else 'FAILED'}: {self.metric} {_shown(self.value)} "
            + joiner.join(f"{passing if meets else failing} {bar}" for meets, bar in clauses)
        )
        if self.compared_to_champion and self.champion_version is None:
            line += "; no champion yet, so the threshold alone decides"
        elif self.compared_to_champion and self.champion_value is None:
            line += f"; champion v{self.champion_version} has no {self.metric} on this test set"
        return line if self.passed else line + "; the model is not registered and not deployed"

    def markdown(self) -> str:
        rows = [
            ("passed", "yes" if self.passed else "NO"),
            ("metric", self.metric),
            ("value", _shown(self.value)),
            ("threshold", f"{'>=' if self.higher_is_better else '<='} {self.threshold}"),
        ]
        if self.compared_to_champion:
            champion = (
                "none yet"
                if self.champion_version is None
                else f"v{self.champion_version}: {_shown(self.champion_value)} (tolerance {self.champion_tolerance})"
            )
            rows.append(("champion on this test set", champion))
        return markdown_table("Quality gate", rows, f"**{self.message}**")


_REGISTERED_FIELDS = (
    "model_name",
    "version",
    "bundle_uri",
    "sha256",
    "approval_status",
    "mlflow_run_id",
    "trained_in_mlflow_run_id",
    "zenml_run_id",
)


class Registration(TypedArtifact):
    """What RegisterModel registered, or why nothing was."""

    registered: bool
    reason: str | None = None
    model_name: str | None = None
    version: str | None = None
    bundle_uri: str | None = None
    sha256: str | None = None
    approval_status: str | None = None
    mlflow_run_id: str | None = None
    trained_in_mlflow_run_id: str | None = None
    zenml_run_id: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Registration:
        missing = [name for name in _REGISTERED_FIELDS if self.registered and not getattr(self, name)]
        if missing:
            raise ValueError(f"a registration must name {', '.join(missing)}")
        if not self.registered and not self.reason:
            raise ValueError("a registration that registered nothing must say why (reason)")
        return self

    @classmethod
    def refused(cls, reason: str) -> Registration:
        """Nothing was registered, because ``reason``."""
        return cls(registered=False, reason=reason)

    def markdown(self) -> str:
        if not self.registered:
            return markdown_table("Registration", [("registered", "no"), ("reason", self.reason)])
        rows = [
            ("registered", f"{self.model_name} version {self.version} ({self.approval_status})"),
            ("bundle", self.bundle_uri),
            ("bundle sha256", self.sha256),
            ("MLflow run", self.mlflow_run_id),
            ("trained in MLflow run", self.trained_in_mlflow_run_id),
            ("ZenML run", self.zenml_run_id),
        ]
        return markdown_table("Registration", rows)


_DEPLOYMENT_FIELDS = ("endpoint_name", "model_name", "version", "sha256", "url", "invocations_url")


class Deployment(TypedArtifact):
    """What DeployEndpoint served, or why nothing was deployed."""

    deployed: bool
    reason: str | None = None
    endpoint_name: str | None = None
    model_name: str | None = None
    version: str | None = None
    sha256: str | None = None
    url: str | None = None
    invocations_url: str | None = None
    details: dict[str, Any] = {}  # what the stack's model deployer adds (pid, endpoint ARN, containers, ...)

    @classmethod
    def skipped(cls, reason: str) -> Deployment:
        """Nothing was deployed, because ``reason``."""
        return cls(deployed=False, reason=reason)

    @classmethod
    def of_endpoint(cls, endpoint: Mapping[str, Any]) -> Deployment:
        """The deployment a model deployer's ``deploy_bundle`` answer describes."""
        common = {k: (None if endpoint.get(k) is None else str(endpoint[k])) for k in _DEPLOYMENT_FIELDS}
        return cls(deployed=True, **common, details={k: v for k, v in endpoint.items() if k not in _DEPLOYMENT_FIELDS})

    def markdown(self) -> str:
        if not self.deployed:
            return markdown_table("Deployment", [("deployed", "no"), ("reason", self.reason)])
        rows = [
            ("endpoint", self.endpoint_name),
            ("serves", f"{self.model_name} version {self.version}"),
            ("url", self.url),
            ("invocations", self.invocations_url),
            ("bundle sha256", self.sha256),
            *sorted(self.details.items()),
        ]
        return markdown_table("Deployment", rows)


def preprocessor_markdown(preprocessor: Any) -> str:
    """The dashboard's view of a fitted ``churn.preprocessing.Preprocessor``: one row per feature, in order."""
    lines = [
        "### Preprocessor",
        "",
        f"target `{preprocessor.target}`, {len(preprocessor.feature_order)} features "
        f"in model order; unseen categories: {preprocessor.unseen_policy}",
        "",
        "| feature | kind | fitted value |",
        "|---|---|---|",
    ]
    for name in preprocessor.feature_order:
        if name in preprocessor.classes:
            classes = preprocessor.classes[name]
            shown = ", ".join(map(str, classes[:8])) + (f", ... ({len(classes)} classes)" if len(classes) > 8 else "")
            lines.append(f"| {_cell(name)} | categorical | {_cell(shown)} |")
        else:
            lines.append(f"| {_cell(name)} | numeric | median {_cell(preprocessor.medians.get(name))} |")
    return "\n".join(lines) + "\n"
