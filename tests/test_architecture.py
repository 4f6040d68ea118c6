"""The layering rules of the code base, checked on the source (AST, no import is executed).

- ``steps/`` and ``pipelines/`` use the contracts (``stacks/contracts.py``), never a flavor
  (``stacks/flavors/``): a step must not know which backend it runs on.
- The CLI (``run.py``, ``cli/``) imports no flavor and never names one of our flavors: it asks
  the contract instead.
- ``churn/`` is plain logic: it imports nothing from ``stacks/`` and, except in the modules
  listed in ``ZENML_AWARE`` (each with the reason), nothing from ZenML.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# churn/ modules that legitimately work with ZenML, and why. Each must still import ZenML (else drop it here).
ZENML_AWARE = {
    "churn/model_control.py": "the Model Control Plane (stages, version metadata) over ZenML Client, for steps and CLI",
    "churn/model_registry.py": "the approval and all-or-nothing rules, written once over ZenML's BaseModelRegistry API",
    "churn/aws/autopilot_job.py": "AutopilotConfig.from_active_stack: region, role, bucket from the stack's deployer",
}


def _modules(*folders: str, root: Path = REPO) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        path = root / folder
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return files


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted module) for every import in the file, including those inside functions."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            for alias in node.names:  # `from stacks import flavors`
                yield node.lineno, f"{node.module}.{alias.name}"


def _offending(folders: tuple[str, ...], prefix: str, root: Path = REPO) -> list[str]:
    """``file:line: imports module`` for each import line of ``prefix`` (or a module under it) in ``folders``."""
    found = {}
    for path in _modules(*folders, root=root):
        for line, module in _imports(path):
            if module == prefix or module.startswith(prefix + "."):
                found.setdefault((str(path.relative_to(root)), line), module)
    return [f"{name}:{line}: imports {module}" for (name, line), module in sorted(found.items())]


def test_steps_and_pipelines_import_no_flavor():
    assert _offending(("steps", "pipelines"), "stacks.flavors") == []


def test_the_cli_imports_no_flavor_and_names_none():
    assert _offending(("run.py", "cli"), "stacks.flavors") == []
    flavor_names = set()
    for path in _modules("stacks/flavors"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "FLAVOR" for t in node.targets):
                flavor_names.add(node.value.value)
    assert "churn_sagemaker_endpoint" in flavor_names and "churn_local_endpoint" in flavor_names
    named = [
        f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}"
        for path in _modules("run.py", "cli", "steps", "pipelines")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in flavor_names
    ]
    assert named == []


def test_churn_is_plain_logic():
    assert _offending(("churn",), "stacks") == []
    zenml = _offending(("churn",), "zenml")
    unexpected = [line for line in zenml if line.split(":")[0] not in ZENML_AWARE]
    assert unexpected == [], "plain logic imports ZenML; move it to a step/flavor or list it in ZENML_AWARE with why"
    stale = [name for name in ZENML_AWARE if not any(line.startswith(name + ":") for line in zenml)]
    assert stale == [], "these no longer import ZenML: remove them from ZENML_AWARE"


def test_the_check_sees_lazy_and_from_imports(tmp_path):
    """The AST walk finds imports inside functions and `from stacks import flavors` (else the rules prove nothing)."""
    module = tmp_path / "steps" / "bad.py"
    module.parent.mkdir()
    module.write_text(
        "def f():\n    from stacks.flavors.local_alerter import LocalAlerter\n"
        "from stacks import flavors\nimport stacks.flavors.sns_alerter as sns\n"
    )
    assert _offending(("steps",), "stacks.flavors", root=tmp_path) == [
        "steps/bad.py:2: imports stacks.flavors.local_alerter",
        "steps/bad.py:3: imports stacks.flavors",
        "steps/bad.py:4: imports stacks.flavors.sns_alerter",
    ]
