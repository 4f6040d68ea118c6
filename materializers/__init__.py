"""ZenML materializers for our own artifact types.

Importing this package also makes the installed distributions' module map be read once per process
and kept on disk between processes (:func:`read_distributions_once`), the one patch of a library
function in the product: ZenML (``zenml.utils.source_utils._get_package_for_module``, for every stored
artifact whose type comes from a distribution such as pandas) and MLflow (its requirement check in
``log_model``) each call ``packages_distributions()``, which reads every installed distribution's file
list: ~0.4-0.6 s of CPU a call here, four calls in a training run, at least one in every run (a cached
run included). The installed set does not change while a pipeline runs; between runs, the map is
reused from ``~/.cache/churn-mlops`` (``$XDG_CACHE_HOME``) while the installed set is the same: the
file's name is a hash of every ``*.dist-info`` / ``*.egg-info`` entry on ``sys.path`` with its
modification time, so installing, upgrading or removing a distribution computes it afresh. Every step
that stores an artifact imports this package, so the patch is in place before ZenML's first call.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from churn.files import cache_dir

METADATA_SUFFIXES = (".dist-info", ".egg-info")
STALE_SECONDS = 7 * 24 * 3600  # a cached map no process read for a week is removed


def distributions_key(path: list[str] | None = None) -> str:
    """A hash of the installed set on ``path`` (default ``sys.path``): each metadata entry's path and mtime.

    Installing, upgrading (a new ``name-version.dist-info``), reinstalling (the entry is written again)
    or removing a distribution changes it. Costs one directory listing per ``path`` entry.

    Args:
        path: The import path to look at.

    Returns:
        A hex digest.
    """
    digest = hashlib.sha256(sys.version.encode())
    for entry in sys.path if path is None else path:
        digest.update(b"\0" + os.fsencode(entry))
        try:
            with os.scandir(entry or ".") as found:
                items = sorted((e.name, e.stat().st_mtime_ns) for e in found if e.name.endswith(METADATA_SUFFIXES))
        except OSError:  # not a directory (a zip, a missing entry): nothing installed there to track
            continue
        for name, mtime in items:
            digest.update(f"\0{name}\0{mtime}".encode())
    return digest.hexdigest()


def cached_map(compute: Callable[[], Mapping[str, list[str]]], key: str, directory: Path) -> Mapping[str, list[str]]:
    """``compute()``'s map, read from ``directory`` when a process of the same installed set (``key``) wrote it.

    A missing, unreadable or malformed file is computed again; one that cannot be written is not kept
    (the map is still returned). Maps of other installed sets that no process read for a week are removed.

    Args:
        compute: ``packages_distributions`` itself.
        key: :func:`distributions_key` of the installed set.
        directory: The cache directory.

    Returns:
        Top-level module -> distribution names.
    """
    from churn.files import atomic_write_json

    path = directory / f"packages_distributions-{key[:32]}.json"
    try:
        stored = json.loads(path.read_text())
        if isinstance(stored, dict) and all(isinstance(v, list) for v in stored.values()):
            os.utime(path)  # in use: not pruned as stale
            return stored
    except (OSError, ValueError):
        pass
    computed = {module: list(names) for module, names in compute().items()}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in directory.glob("packages_distributions-*.json"):  # other venvs' maps, unused for a week
            if now - old.stat().st_mtime > STALE_SECONDS:
                old.unlink(missing_ok=True)
        atomic_write_json(path, computed, indent=0)
    except OSError:
        pass
    return computed


def read_distributions_once() -> None:
    """Make ``packages_distributions()`` (stdlib and the ``importlib_metadata`` backport) compute its map once.

    Both then return a fresh copy of one map (the backport's when installed: it also maps compiled
    top-level modules), so a caller that edits its copy (MLflow does) changes no one else's. The map is
    read on the first call, from :func:`cache_dir` while the installed set is unchanged.
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
        return cached_map(compute, distributions_key(), cache_dir())

    def packages_distributions() -> dict[str, list[str]]:
        return {module: list(names) for module, names in mapping().items()}

    once: Callable[[], dict[str, list[str]]] = functools.wraps(compute)(packages_distributions)
    once._read_once = True  # type: ignore[attr-defined]
    importlib.metadata.packages_distributions = once
    if backport is not None:
        backport.packages_distributions = once


read_distributions_once()
