"""The installed distributions' module map (materializers.read_distributions_once) is kept between processes
only while the installed set is the same: a new, upgraded or removed distribution computes it again."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import materializers
from materializers import cached_map, distributions_key

REPO = Path(__file__).resolve().parents[1]


class Counting:
    """A stand-in for ``packages_distributions`` that says how often it was computed."""

    def __init__(self, mapping: dict[str, list[str]]):
        self.mapping, self.calls = mapping, 0

    def __call__(self) -> dict[str, list[str]]:
        self.calls += 1
        return self.mapping


def test_the_map_is_computed_once_per_installed_set(tmp_path):
    compute = Counting({"pandas": ["pandas"], "yaml": ["PyYAML"]})
    first = cached_map(compute, "a" * 64, tmp_path)
    second = cached_map(compute, "a" * 64, tmp_path)  # another process, same installed set
    assert first == second == {"pandas": ["pandas"], "yaml": ["PyYAML"]}
    assert compute.calls == 1
    cached_map(compute, "b" * 64, tmp_path)  # another installed set: computed again
    assert compute.calls == 2


def test_a_damaged_cache_file_is_computed_again(tmp_path):
    compute = Counting({"numpy": ["numpy"]})
    cached_map(compute, "c" * 64, tmp_path)
    (stored,) = tmp_path.glob("packages_distributions-*.json")
    stored.write_text('{"numpy": "not a list"')  # truncated
    assert cached_map(compute, "c" * 64, tmp_path) == {"numpy": ["numpy"]}
    assert compute.calls == 2
    assert json.loads(stored.read_text()) == {"numpy": ["numpy"]}


def test_an_unwritable_cache_still_gives_the_map(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cached_map(Counting({"x": ["x-dist"]}), "d" * 64, blocker / "cache") == {"x": ["x-dist"]}


def test_the_key_follows_installs_upgrades_and_removals(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    (site / "alpha-1.0.dist-info").mkdir()
    (site / "alpha").mkdir()
    path = [str(site), str(tmp_path / "missing"), str(tmp_path / "archive.zip")]
    before = distributions_key(path)
    assert distributions_key(path) == before
    (site / "alpha" / "new_module.py").write_text("")  # a module file: not the installed set
    assert distributions_key(path) == before
    (site / "beta-2.0.dist-info").mkdir()  # installed
    installed = distributions_key(path)
    assert installed != before
    (site / "alpha-1.0.dist-info").rename(site / "alpha-1.1.dist-info")  # upgraded
    upgraded = distributions_key(path)
    assert upgraded != installed
    os.utime(site / "beta-2.0.dist-info", ns=(1, 1))  # reinstalled in place
    assert distributions_key(path) != upgraded
    (site / "beta-2.0.dist-info").rmdir()  # removed
    assert distributions_key(path) not in (before, installed, upgraded)


def test_a_process_with_the_cache_gets_the_same_map_as_one_without(tmp_path):
    """The map a run reads from the cache is the one the library computes (pandas, PyYAML's yaml ...)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    script = (
        "import json, importlib_metadata as m; fresh = m.packages_distributions(); import materializers; "
        "import importlib.metadata as s; "
        "print(json.dumps([fresh == s.packages_distributions(), fresh == m.packages_distributions()]))"
    )
    for _ in range(2):  # the first process writes the cache, the second reads it
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == [True, True]
    assert len(list((tmp_path / "churn-mlops").glob("packages_distributions-*.json"))) == 1
    here = importlib.metadata.packages_distributions()
    assert here["yaml"] == ["PyYAML"] and materializers.cache_dir().name == "churn-mlops"
