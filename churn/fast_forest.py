"""Lockstep tree walking (``LockstepTrees``), and the compiled view of a fitted scikit-learn forest.

scikit-learn's ``predict_proba`` costs several milliseconds per call whatever the row
count (input validation, per-tree Python dispatch), and its per-row tree walk is one
dependent load after another. Here a numba kernel walks flattened node arrays tree by
tree, 16 rows at a time in lockstep, in 16 scalar variables the compiler keeps in registers,
so 16 independent walks are in flight. Nodes are renumbered so that siblings are adjacent
(the right child is the left one + 1): one step is ``node = left[node] + (x > threshold)``.
A leaf is its own left child with a threshold of +inf, so every row takes the tree's depth
in steps and rows never diverge in control flow. Node ids and row offsets are unsigned, so
numba adds no negative-index wraparound to the loads (a quarter of the time). A large matrix
is split into row ranges scored on the CPUs this process may use at once (``LockstepTrees.add_to``).
The boosted members of an AutoML ensemble walk the same kernel (``churn.automl.fast_boosting``).

The result equals ``predict_proba``:

- sklearn compares the float32 input with a float64 threshold (``x <= t``). For a float32
  ``x``, ``x > t`` exactly when ``x > t32``, with ``t32`` the largest float32 not above ``t``;
  the kernel compares float32 with those ``t32``.
- each leaf's class weights are normalised as ``DecisionTreeClassifier.predict_proba`` does;
- per row the sum starts at 0.0 and adds tree 1, 2, ... in order (the kernel adds to what the
  caller's ``out`` holds, in tree order), then divides by the number of trees, as the forest's
  (single-threaded) accumulation.
- NaN inputs (sklearn sends them down the side its ``missing_go_to_left`` says) and infinities
  (which sklearn refuses) are left to ``predict_proba`` itself: the batch holding one is scored by
  the estimator. Our preprocessing imputes every missing value and refuses numbers beyond
  float32, so this happens only to direct callers.

The kernel (for float32 and float64 inputs and sums) is compiled on the first trees compiled (at
bundle load), or loaded from numba's on-disk cache (next to this file, else numba's user cache
dir; in-process compilation when neither is writable). It holds no state between calls and releases the GIL, so server
threads may score concurrently, and one call may split its rows over a few threads.
Without numba (not importable) ``CompiledForest.compile`` returns None and the bundle uses ``predict_proba``.

Over 300 lines because the kernel is written out for 16 rows (numba keeps 16 named variables in
registers, not an array); the forest's compiler is the kernel's first user and lives beside it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is locked; a stripped environment scores with sklearn
    numba = None

LOCKSTEP_ROWS = 16
BLOCK_ROWS = 256  # rows scored by all trees before the next block: their x stays in L1/L2 (88 KB at 43 float64 columns)
SPLIT_ROWS = 2_048  # a call of at least twice this many rows is split over threads, each part at least this
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_caller = threading.local()  # .threads: the cap ``row_threads`` set for this thread's calls


@contextmanager
def row_threads(threads: int) -> Iterator[None]:
    """Calls made by this thread inside the block split their rows over at most ``threads`` threads.

    A server whose scoring pool already runs requests side by side scores each on 1 thread
    (``churn.serving.app.Scorer``), so its pool bounds its CPUs; a ``threads`` given to the call wins.

    Args:
        threads: the cap (1: the calling thread alone).

    Yields:
        Nothing; the previous cap is back after the block.
    """
    previous = getattr(_caller, "threads", None)
    _caller.threads = max(1, int(threads))
    try:
        yield
    finally:
        _caller.threads = previous


def cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_cap() -> int:
    """The threads a call made on this thread may split its rows over: its :func:`row_threads` cap, else the CPUs."""
    return getattr(_caller, "threads", None) or cpus()


def side_by_side(function: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[function(item) for item in items]``, run at once: the first on this thread, the others on the shared pool.

    Each call runs with a cap of one thread (:func:`row_threads`), so it does not split its rows further.

    Args:
        function: called once per item; it must be safe to run on several threads at once.
        items: at least one.

    Returns:
        The results in the order of ``items``.

    Raises:
        The first item's exception, else the first other one's, after every call has ended.
    """

    def one(item: Any) -> Any:
        with row_threads(1):
            return function(item)

    others = [_scoring_pool().submit(one, item) for item in items[1:]]
    try:
        first = one(items[0])
    finally:
        wait(others)
    return [first, *(future.result() for future in others)]


def _scoring_pool() -> ThreadPoolExecutor:
    """Threads for the row ranges of large calls, shared by every forest of the process (made on first use)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max(1, cpus() - 1), thread_name_prefix="forest-rows")
        return _pool


def _walk(x, roots, depth, feature, threshold, left, value, out):  # pragma: no cover - compiled
    # out[i] += the leaf values of row i in trees 0, 1, 2, ... (in that order)
    n_trees = roots.shape[0]
    n = x.shape[0]
    width = np.uint64(x.shape[1])
    cells = x.ravel()  # row-major: row s's cells start at s * width
    for b0 in range(0, n, BLOCK_ROWS):
        b1 = min(n, b0 + BLOCK_ROWS)
        full = b0 + (b1 - b0) // 16 * 16
        for t in range(n_trees):
            root = roots[t]
            steps = depth[t]
            for s in range(b0, full, 16):  # 16 rows in lockstep (LOCKSTEP_ROWS), one variable each
                # unsigned offsets and node ids: numba adds no negative-index wraparound to the loads
                r0 = np.uint64(s) * width
                r1, r2, r3 = r0 + width, r0 + 2 * width, r0 + 3 * width
                r4, r5, r6, r7 = r0 + 4 * width, r0 + 5 * width, r0 + 6 * width, r0 + 7 * width
                r8, r9, r10, r11 = r0 + 8 * width, r0 + 9 * width, r0 + 10 * width, r0 + 11 * width
                r12, r13, r14, r15 = r0 + 12 * width, r0 + 13 * width, r0 + 14 * width, r0 + 15 * width
                n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = n8 = n9 = n10 = n11 = n12 = n13 = n14 = n15 = root
                for _ in range(steps):
                    n0 = left[n0] + np.uint32(cells[r0 + feature[n0]] > threshold[n0])
                    n1 = left[n1] + np.uint32(cells[r1 + feature[n1]] > threshold[n1])
                    n2 = left[n2] + np.uint32(cells[r2 + feature[n2]] > threshold[n2])
                    n3 = left[n3] + np.uint32(cells[r3 + feature[n3]] > threshold[n3])
                    n4 = left[n4] + np.uint32(cells[r4 + feature[n4]] > threshold[n4])
                    n5 = left[n5] + np.uint32(cells[r5 + feature[n5]] > threshold[n5])
                    n6 = left[n6] + np.uint32(cells[r6 + feature[n6]] > threshold[n6])
                    n7 = left[n7] + np.uint32(cells[r7 + feature[n7]] > threshold[n7])
                    n8 = left[n8] + np.uint32(cells[r8 + feature[n8]] > threshold[n8])
                    n9 = left[n9] + np.uint32(cells[r9 + feature[n9]] > threshold[n9])
                    n10 = left[n10] + np.uint32(cells[r10 + feature[n10]] > threshold[n10])
                    n11 = left[n11] + np.uint32(cells[r11 + feature[n11]] > threshold[n11])
                    n12 = left[n12] + np.uint32(cells[r12 + feature[n12]] > threshold[n12])
                    n13 = left[n13] + np.uint32(cells[r13 + feature[n13]] > threshold[n13])
                    n14 = left[n14] + np.uint32(cells[r14 + feature[n14]] > threshold[n14])
                    n15 = left[n15] + np.uint32(cells[r15 + feature[n15]] > threshold[n15])
                out[s] += value[n0]
                out[s + 1] += value[n1]
                out[s + 2] += value[n2]
                out[s + 3] += value[n3]
                out[s + 4] += value[n4]
                out[s + 5] += value[n5]
                out[s + 6] += value[n6]
                out[s + 7] += value[n7]
                out[s + 8] += value[n8]
                out[s + 9] += value[n9]
                out[s + 10] += value[n10]
                out[s + 11] += value[n11]
                out[s + 12] += value[n12]
                out[s + 13] += value[n13]
                out[s + 14] += value[n14]
                out[s + 15] += value[n15]
            for s in range(full, b1):  # the last rows of the block, one at a time
                node = root
                for _ in range(steps):
                    node = left[node] + np.uint32(x[s, feature[node]] > threshold[node])
                out[s] += value[node]


def _jit(function):
    try:  # cache the machine code next to this module (or in numba's user cache dir) when writable
        return numba.njit(cache=True, nogil=True)(function)
    except RuntimeError:  # no writable cache location: compile in-process at load instead
        return numba.njit(nogil=True)(function)


_kernel = _jit(_walk) if numba is not None else None


def compile_kernel() -> bool:
    """Compile the kernel's three variants (forests, LightGBM/HistGB, XGBoost) now, or load them from numba's cache.

    ``LockstepTrees`` calls it at bundle load; the image build calls it to fill the cache.

    Returns:
        False without numba, else True.
    """
    if _kernel is None:
        return False
    one = np.zeros(1, dtype=np.uint32)
    for dtype, sums in ((np.float32, np.float64), (np.float64, np.float64), (np.float32, np.float32)):
        x, threshold = np.zeros((1, 1), dtype), np.full(1, np.inf, dtype)
        _kernel(x, one, one, one, threshold, one, np.zeros(1, sums), np.zeros(1, sums))
    return True


def as_rows(matrix: np.ndarray, n_features: int, dtype: type) -> np.ndarray:
    """``matrix`` as C-contiguous rows of ``dtype`` (beyond float32: +-inf), or ValueError naming the width expected.

    Args:
        matrix: the feature matrix a compiled model was called with.
        n_features: the model's column count.
        dtype: the type its trees compare in.

    Returns:
        The rows (``matrix`` itself when it is already so).

    Raises:
        ValueError: not a matrix of ``n_features`` columns.
    """
    with np.errstate(over="ignore"):  # a number beyond float32 becomes +-inf, as the libraries' own cast
        x = np.ascontiguousarray(matrix, dtype=dtype)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(f"expected a matrix of {n_features} feature columns, got shape {np.shape(matrix)}")
    return x


class Tree(NamedTuple):
    """One tree's nodes by their own ids (the root is 0): what ``LockstepTrees`` flattens.

    ``left``/``right`` are child ids (anything at leaves), ``threshold`` is compared as
    ``x > threshold`` goes right, ``value`` is the leaf's output (anything at splits).
    """

    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray


class LockstepTrees:
    """Trees flattened for the lockstep kernel: siblings adjacent, leaves their own left child.

    Args:
        trees: the trees, in the order their values are added.
        dtype: the comparison type (float32 for sklearn's forests and XGBoost, float64 for
            LightGBM and HistGradientBoosting); thresholds are taken as already in it.
        sum_dtype: the type leaf values are added in (float32 for XGBoost, as XGBoost sums);
            ``add_to``'s ``out`` is of this type.
    """

    def __init__(self, trees: Iterable[Tree], dtype: type = np.float64, sum_dtype: type = np.float64):
        self.dtype = np.dtype(dtype)
        roots, depths, feature, threshold, left, value = [], [], [], [], [], []
        base = 0
        for tree in trees:
            order, depth = _breadth_first(tree)
            position = np.empty(len(tree.left), dtype=np.int64)
            position[order] = np.arange(len(order))
            leaf = np.asarray(tree.is_leaf, dtype=bool)[order]
            own = np.arange(len(order))
            left.append(base + np.where(leaf, own, position[np.where(leaf, 0, tree.left[order])]))
            feature.append(np.where(leaf, 0, tree.feature[order]))  # any valid column for a leaf
            threshold.append(np.where(leaf, np.inf, tree.threshold[order]))  # x > inf: never, so a leaf stays
            value.append(tree.value[order])
            roots.append(base)
            depths.append(depth)
            base += len(order)
        if base >= 2**32:
            raise ValueError(f"{base} tree nodes: more than the kernel's 32-bit node ids")
        self.n_trees = len(roots)
        self.roots = np.asarray(roots, dtype=np.uint32)
        self.depth = np.asarray(depths, dtype=np.uint32)
        self.feature = np.ascontiguousarray(np.concatenate(feature or [[]]), dtype=np.uint32)
        self.threshold = np.ascontiguousarray(np.concatenate(threshold or [[]]), dtype=self.dtype)
        self.left = np.ascontiguousarray(np.concatenate(left or [[]]), dtype=np.uint32)
        self.value = np.ascontiguousarray(np.concatenate(value or [[]]), dtype=sum_dtype)
        compile_kernel()  # compile / load the kernel now, at bundle load

    def add_to(self, x: np.ndarray, out: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Add each row's leaf values, tree by tree in order, to ``out`` (what it holds is the start).

        Args:
            x: the rows, C-contiguous in ``dtype``, finite (no NaN: the kernel has no missing-value rule).
            out: ``sum_dtype``, one per row; each row's sum is the same whichever thread makes it.
            threads: at most this many threads score row ranges at once (default: the cap of an
                enclosing :func:`row_threads`, else the CPUs this process may use); the caller's
                thread scores one range itself, so a call never waits for a busy pool alone.

        Returns:
            ``out``.
        """
        parts = max(1, min(threads or thread_cap(), x.shape[0] // SPLIT_ROWS))
        bounds = np.linspace(0, x.shape[0], parts + 1).astype(int)
        side_by_side(lambda rows: self._score(x, out, *rows), list(zip(bounds[:-1], bounds[1:])))
        return out

    def _score(self, x: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
        _kernel(
            x[start:stop], self.roots, self.depth, self.feature, self.threshold, self.left, self.value, out[start:stop]
        )


def _breadth_first(tree: Tree) -> tuple[np.ndarray, int]:
    """The tree's node ids in an order where each split's two children are adjacent (left, right), and its depth."""
    order: list[int] = [0]
    level = {0: 0}
    for node in order:  # grows while iterated: a breadth-first walk
        if not tree.is_leaf[node]:
            children = (int(tree.left[node]), int(tree.right[node]))
            order += children
            level[children[0]] = level[children[1]] = level[node] + 1
    return np.asarray(order, dtype=np.int64), max(level.values())


def _float32_below(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 threshold (float32 max for larger ones)."""
    rounded = threshold.astype(np.float32)
    above = rounded.astype(np.float64) > threshold
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


class CompiledForest:
    """Flattened trees of a fitted forest of ``DecisionTreeClassifier`` (binary)."""

    def __init__(self, estimator: Any):
        self._estimator = estimator
        self.positive = list(estimator.classes_).index(1)
        trees = []
        for tree in (e.tree_ for e in estimator.estimators_):
            weights = tree.value[:, 0, :]  # as DecisionTreeClassifier.predict_proba: normalise per leaf
            normalizer = weights.sum(axis=1, keepdims=True)
            normalizer[normalizer == 0.0] = 1.0
            leaf = tree.children_left < 0
            trees.append(
                Tree(
                    left=tree.children_left,
                    right=tree.children_right,
                    is_leaf=leaf,
                    feature=tree.feature,
                    threshold=np.where(leaf, np.float32(np.inf), _float32_below(tree.threshold)),
                    value=(weights / normalizer)[:, self.positive],
                )
            )
        self.trees = LockstepTrees(trees, np.float32)
        self.n_trees = self.trees.n_trees
        self.n_features = int(estimator.n_features_in_)

    @classmethod
    def compile(cls, estimator: Any) -> CompiledForest | None:
        """A compiled forest for binary RandomForest/ExtraTrees classifiers with class 1; None otherwise."""
        from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

        if _kernel is None or not isinstance(estimator, (RandomForestClassifier, ExtraTreesClassifier)):
            return None
        classes = list(getattr(estimator, "classes_", []))
        if getattr(estimator, "n_outputs_", 1) != 1 or len(classes) != 2 or 1 not in classes:
            return None
        return cls(estimator)

    def predict_positive(self, matrix: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Probability of class 1 per row, equal to ``estimator.predict_proba(matrix)[:, 1]``.

        ``threads``: as :meth:`LockstepTrees.add_to`.
        """
        x = as_rows(matrix, self.n_features, np.float32)  # trees split on float32 inputs
        if not np.isfinite(x).all():  # NaN: sklearn's own missing-value routing decides; inf: sklearn refuses
            return self._estimator.predict_proba(matrix)[:, self.positive]
        out = self.trees.add_to(x, np.zeros(x.shape[0], dtype=np.float64), threads)
        out /= self.n_trees
        return out
