"""A new local MLflow store starts as a copy of an empty, fully migrated one.

MLflow creates a new SQLite tracking store by running every schema migration from its first
(``mlflow.store.db.utils._initialize_tables``): ~6 s here, paid by the first run of every fresh
stack (a fresh clone's ``make run``, each test that makes its own stack). :func:`seed_sqlite_store`
runs those migrations once per MLflow version into ``~/.cache/churn-mlops`` (``$XDG_CACHE_HOME``) and
gives a store that does not exist yet a copy of that empty database. MLflow then finds its tables at
the latest revision and only adds what every store opening an empty database adds (its Default
experiment, with this store's own artifact root). An existing store is never touched; a remote
store (SageMaker, an MLflow server) is not a file and is left alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a local SQLite tracking URI (``sqlite:////abs/path.db``), None for any other URI."""
    if not tracking_uri.startswith(SQLITE_PREFIX):
        return None
    path = tracking_uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def empty_store_template(cache: Path) -> Path:
    """An empty MLflow database at this MLflow version's latest schema revision, made once in ``cache``.

    Args:
        cache: The cache directory (created if missing).

    Returns:
        The template's path.
    """
    import mlflow
    from mlflow.store.db.utils import _initialize_tables, create_sqlalchemy_engine

    template = cache / f"mlflow-{mlflow.__version__}-empty.db"
    if template.is_file():
        return template
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        built = Path(tmp) / "empty.db"
        engine = create_sqlalchemy_engine(f"{SQLITE_PREFIX}{built}")
        try:
            _initialize_tables(engine)  # what MLflow runs for a new database: the initial tables, every migration
        finally:
            engine.dispose()
        os.replace(built, template)  # a concurrent builder wrote the same schema: either file is right
    return template


def seed_sqlite_store(tracking_uri: str, cache: Path | None = None) -> bool:
    """Give the SQLite store of ``tracking_uri``, if it does not exist yet, a copy of the empty migrated database.

    Never raises: on any failure the store is left for MLflow to create as usual (only slower).

    Args:
        tracking_uri: The experiment tracker's URI.
        cache: Where the template is kept (default: ``$XDG_CACHE_HOME/churn-mlops``).

    Returns:
        True when the store was seeded; False when it exists already, is not a local SQLite file, or seeding
        failed.
    """
    from churn.files import cache_dir

    target = sqlite_path(tracking_uri)
    if target is None or target.exists():
        return False
    try:
        template = empty_store_template(cache or cache_dir())
        target.parent.mkdir(parents=True, exist_ok=True)
        copy = target.with_name(f".{target.name}.{os.getpid()}.seed.tmp")
        shutil.copyfile(template, copy)
        try:
            os.link(copy, target)  # atomic and never over a store another process created meanwhile
        finally:
            copy.unlink(missing_ok=True)
        return True
    except Exception:  # noqa: BLE001 - a speed-up only: MLflow creates the store itself as before
        return False
