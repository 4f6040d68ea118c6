"""ZenML materializers for our own artifact types.

Importing this package also makes the installed distributions' module map be read once per process
(:func:`read_distributions_once`), the one patch of a library function in the product: ZenML
(``zenml.utils.source_utils._get_package_for_module``, for every stored artifact whose type comes from a
distribution such as pandas) and MLflow (its requirement check in ``log_model``) each call
``packages_distributions()``, which reads every installed distribution's file list: ~0.4-0.6 s of CPU a
call here, four calls in a training run. The installed set does not change while a pipeline runs. Every
step that stores an artifact imports this package, so the patch is in place before ZenML's first call.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Mapping


def read_distributions_once() -> None:
    """Make ``packages_distributions()`` (stdlib and the ``importlib_metadata`` backport) compute its map once.

    Both then return a fresh copy of one map (the backport's when installed: it also maps compiled
    top-level modules), so a caller that edits its copy (MLflow does) changes no one else's.
    """
    try:
        import importlib_metadata as backport
    except ImportError:  # the stdlib alone
        backport = None
    compute = (backport or importlib.metadata).packages_distributions
    if getattr(compute, "_read_once", False):
        return

    @functools.cache
    def mapping() -> Mapping[str, list[str]]:
        return compute()

    def packages_distributions() -> dict[str, list[str]]:
        return {module: list(names) for module, names in mapping().items()}

    once: Callable[[], dict[str, list[str]]] = functools.wraps(compute)(packages_distributions)
    once._read_once = True  # type: ignore[attr-defined]
    importlib.metadata.packages_distributions = once
    if backport is not None:
        backport.packages_distributions = once


read_distributions_once()
