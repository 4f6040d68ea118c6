"""The local stack recipe: everything on this machine, registered idempotently.

| concern             | component name          | flavor                  |
|---------------------|-------------------------|-------------------------|
| orchestrator        | default                 | local                   |
| artifact store      | default                 | local                   |
| experiment tracker  | mlflow_tracker          | mlflow (sqlite)         |
| model registry      | mlflow_registry         | mlflow                  |
| feature store       | churn_feature_store     | churn_local_offline     |
| model deployer      | churn_local_endpoint    | churn_local_endpoint    |
| alerter             | churn_local_alerter     | churn_local_outbox      |
"""

from __future__ import annotations

from zenml.client import Client
from zenml.enums import StackComponentType as T

from stacks.contracts import EXPERIMENT_TRACKER

STACK_NAME = "local"
FLAVOR_SOURCES = {
    "stacks.flavors.local_feature_store.LocalFeatureStoreFlavor": T.FEATURE_STORE,
    "stacks.flavors.local_deployer.LocalEndpointDeployerFlavor": T.MODEL_DEPLOYER,
    "stacks.flavors.local_alerter.LocalAlerterFlavor": T.ALERTER,
}
# component type -> (name, flavor, configuration)
COMPONENTS = {
    T.EXPERIMENT_TRACKER: (EXPERIMENT_TRACKER, "mlflow", {}),
    T.MODEL_REGISTRY: ("mlflow_registry", "mlflow", {}),
    T.FEATURE_STORE: ("churn_feature_store", "churn_local_offline", {}),
    T.MODEL_DEPLOYER: ("churn_local_endpoint", "churn_local_endpoint", {}),
    T.ALERTER: ("churn_local_alerter", "churn_local_outbox", {}),
}


def register_flavors(client: Client, sources: dict[str, T]) -> None:
    from zenml.stack.flavor import validate_flavor_source

    for source, component_type in sources.items():
        _, flavor = validate_flavor_source(source=source, component_type=component_type)
        try:
            client.get_flavor_by_name_and_type(flavor.name, component_type)
        except KeyError:
            client.create_flavor(source=source, component_type=component_type)


def setup_local_stack(activate: bool = True) -> dict[str, str]:
    """Register our flavors, the components and the ``local`` stack if missing; return what was created."""
    client = Client()
    created: dict[str, str] = {}
    register_flavors(client, FLAVOR_SOURCES)
    for component_type, (name, flavor, configuration) in COMPONENTS.items():
        try:
            client.get_stack_component(component_type, name, allow_name_prefix_match=False)
        except KeyError:
            client.create_stack_component(
                name=name, flavor=flavor, component_type=component_type, configuration=configuration
            )
            created[name] = component_type.value
    try:
        client.get_stack(STACK_NAME, allow_name_prefix_match=False)
    except KeyError:
        components = {T.ORCHESTRATOR: "default", T.ARTIFACT_STORE: "default"}
        components.update({t: name for t, (name, _, _) in COMPONENTS.items()})
        client.create_stack(name=STACK_NAME, components=components)
        created[STACK_NAME] = "stack"
    if activate and client.active_stack_model.name != STACK_NAME:
        client.activate_stack(STACK_NAME)
    return created
