"""The cache policy of the training steps: ZenML's default plus the code they run and the locked libraries.

ZenML keys a step's cache on the step's own source, its parameters and its inputs. The
steps are thin: the logic they run lives in ``churn/`` (preprocessing, training,
evaluation) and their outputs are written by ``materializers/``, and a model trained with
other library versions (``requirements.lock``) is another model. ``churn_code_hash`` is
the cache function that adds all three.

"The code they run" is computed, not listed: the step modules that use this policy (every
``steps/*.py`` importing ``steps.caching``) and, from them, every module of ``churn/`` and
``materializers/`` reached through ``import`` statements (at any depth, function-level imports
included) or named in a string as ``"churn.module"`` / ``"churn.module:attribute"`` (the AutoML
engine registry loads engines that way), plus the ``__init__.py`` of each package on the way.
So editing the serving code, the CLI or the stack recipes keeps the training cache, while
editing what training imports (``churn/preprocessing.py``, ``churn/bundle.py`` ...) invalidates it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from zenml.config.cache_policy import CachePolicy

REPO = Path(__file__).resolve().parents[1]
FOLLOWED = ("churn", "materializers")  # first-party packages whose code goes into the key
# `import a.b as c, d` / `from .a import (b, c as d)` at the start of a line (any indentation)
IMPORT_STATEMENT = re.compile(
    r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)|import[ \t]+([^\n#;]*))", re.M
)
# a module named in a string, as the AutoML engine registry does: "churn.aws.autopilot_job:AutopilotEngine"
MODULE_STRING = re.compile(r"""["']((?:churn|materializers)(?:\.\w+)+)(?::\w+)?["']""")


def _module_file(root: Path, module: str) -> Path | None:
    """The file of a first-party module (``a/b.py`` or ``a/b/__init__.py``), None if not one of ours."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(root: Path, path: Path) -> Iterator[str]:
    """Every module ``path`` imports or names in a string.

    Absolute names; ``from a import b`` yields ``a`` and ``a.b``.

    Read with regular expressions rather than ``ast`` (a cache function runs for every cached step of every run;
    ast.walk over these files takes ~0.5 s here, the regexes milliseconds). A docstring line that reads like an
    import can only add a module to the key, never drop one."""
    text = path.read_text(errors="replace")
    name = _module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for match in IMPORT_STATEMENT.finditer(text):
        dots, source, names, plain = match.groups()
        if plain is not None:
            yield from (part.split()[0] for part in plain.split(",") if part.strip())
            continue
        if dots:
            anchor = package.split(".")[: len(package.split(".")) - (len(dots) - 1)]
            source = ".".join(anchor + ([source] if source else []))
        yield source
        yield from (
            f"{source}.{part.split()[0]}"
            for part in names.strip("()").split(",")
            if part.strip() and part.split()[0] != "*"
        )
    yield from MODULE_STRING.findall(text)


_IMPORTS: dict[tuple[Path, int, int], frozenset[str]] = {}  # (file, mtime_ns, size) -> what it imports


def _imports(root: Path, path: Path) -> frozenset[str]:
    """:func:`_imported_modules` of ``path``, remembered until the file changes (the key runs once per cached step)."""
    stat = path.stat()
    key = (path, stat.st_mtime_ns, stat.st_size)
    if key not in _IMPORTS:
        _IMPORTS[key] = frozenset(_imported_modules(root, path))
    return _IMPORTS[key]


def training_step_files(root: Path = REPO) -> set[Path]:
    """The step modules that use the training cache policy (they import ``steps.caching``)."""
    return {
        path
        for path in (root / "steps").glob("*.py")
        if path.name != "caching.py" and "steps.caching" in _imports(root, path)
    }


def training_code_files(root: Path = REPO) -> set[Path]:
    """The training steps' modules and every churn/materializers module they reach (see the module doc)."""
    seen: set[Path] = set()
    files: dict[str, Path | None] = {}  # module -> its file, looked up once
    todo = sorted(training_step_files(root))
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in _imports(root, path):
            if module.split(".")[0] not in FOLLOWED:
                continue
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                prefix = ".".join(parts[:depth])
                if prefix not in files:
                    files[prefix] = _module_file(root, prefix)
                if files[prefix] is not None and files[prefix] not in seen:
                    todo.append(files[prefix])
    return seen


def churn_code_hash(root: Path = REPO) -> str:
    """SHA-256 over the path and bytes of :func:`training_code_files` and requirements.lock."""
    lock = root / "requirements.lock"
    digest = hashlib.sha256()
    for path in sorted(training_code_files(root)) + ([lock] if lock.is_file() else []):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


TRAINING_CACHE = CachePolicy(cache_func=churn_code_hash)
