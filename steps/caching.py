"""The cache policy of the training steps: ZenML's default plus the code of our ``churn`` package.

ZenML keys a step's cache on the step's own source, its parameters and its inputs. The
steps are thin: the logic they run lives in ``churn/`` (preprocessing, training,
evaluation), so a change there must invalidate the cache too. ``churn_code_hash`` is the
cache function that adds it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from zenml.config.cache_policy import CachePolicy

CHURN_PACKAGE = Path(__file__).resolve().parents[1] / "churn"


def churn_code_hash() -> str:
    """SHA-256 over the path and bytes of every .py file in the churn package."""
    digest = hashlib.sha256()
    for path in sorted(CHURN_PACKAGE.rglob("*.py")):
        if "__pycache__" not in path.parts:
            digest.update(path.relative_to(CHURN_PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


TRAINING_CACHE = CachePolicy(cache_func=churn_code_hash)
