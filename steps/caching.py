"""The cache policy of the training steps: ZenML's default plus our code and locked libraries.

ZenML keys a step's cache on the step's own source, its parameters and its inputs. The
steps are thin: the logic they run lives in ``churn/`` (preprocessing, training,
evaluation) and their outputs are written by ``materializers/``, and a model trained with
other library versions (``requirements.lock``) is another model. ``churn_code_hash`` is
the cache function that adds all three.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from zenml.config.cache_policy import CachePolicy

REPO = Path(__file__).resolve().parents[1]


def churn_code_hash() -> str:
    """SHA-256 over the path and bytes of churn/**/*.py, materializers/**/*.py and requirements.lock."""
    files = [p for folder in ("churn", "materializers") for p in (REPO / folder).rglob("*.py")
             if "__pycache__" not in p.parts]
    lock = REPO / "requirements.lock"
    digest = hashlib.sha256()
    for path in sorted(files) + ([lock] if lock.is_file() else []):
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


TRAINING_CACHE = CachePolicy(cache_func=churn_code_hash)
