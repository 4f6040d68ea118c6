"""The training cache key (steps/caching.py) covers the code training runs, and only that.

Each test edits a copy of the repository's code in tmp_path and compares ``churn_code_hash`` before and
after: what a developer sees as "my edit re-trained the model" or "my edit kept the cached model".
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from steps.caching import REPO, churn_code_hash, training_code_files, training_step_files


@pytest.fixture()
def repo_copy(tmp_path) -> Path:
    for folder in ("churn", "materializers", "steps"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("run.py", "requirements.lock"):
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def _edit(path: Path, text: str = "\n# edited\n") -> None:
    path.write_text(path.read_text() + text)


def test_editing_code_training_does_not_run_keeps_the_cache(repo_copy):
    before = churn_code_hash(repo_copy)
    for path in (
        "churn/serving/server.py",
        "churn/serving/container.py",
        "churn/schedules.py",
        "run.py",
        "steps/deploy.py",
        "steps/register.py",
    ):
        _edit(repo_copy / path)
        assert churn_code_hash(repo_copy) == before, f"editing {path} would re-train the model"


@pytest.mark.parametrize(
    "path",
    [
        "churn/preprocessing.py",
        "churn/training.py",
        "churn/bundle.py",
        "churn/fast_forest.py",
        "materializers/bundle_materializer.py",
        "steps/train_rf.py",
        "requirements.lock",
    ],
)
def test_editing_what_training_runs_invalidates_the_cache(repo_copy, path):
    before = churn_code_hash(repo_copy)
    _edit(repo_copy / path)
    assert churn_code_hash(repo_copy) != before, f"editing {path} would keep a stale cached model"


def test_imports_inside_functions_and_modules_named_in_strings_are_followed(repo_copy):
    (repo_copy / "churn" / "lazy_helper.py").write_text("VALUE = 1\n")
    (repo_copy / "churn" / "plugin_engine.py").write_text("class Engine:\n    pass\n")
    _edit(
        repo_copy / "churn" / "training.py",
        "\n\ndef _late():\n    from churn import lazy_helper\n\n"
        '    return lazy_helper.VALUE, "churn.plugin_engine:Engine"\n',
    )
    files = {p.relative_to(repo_copy).as_posix() for p in training_code_files(repo_copy)}
    assert {"churn/lazy_helper.py", "churn/plugin_engine.py", "churn/__init__.py"} <= files
    before = churn_code_hash(repo_copy)
    _edit(repo_copy / "churn" / "plugin_engine.py")
    assert churn_code_hash(repo_copy) != before


def test_the_roots_are_the_steps_that_use_the_training_cache():
    names = {p.name for p in training_step_files(REPO)}
    assert {"preprocess.py", "train_rf.py", "train_automl.py"} <= names
    assert not names & {"deploy.py", "register.py", "source.py", "caching.py"}
