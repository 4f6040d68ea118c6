"""Compiled boosters score exactly as their libraries (to 1e-9): lockstep for finite batches, NaN by exact rules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from churn.automl.fast_boosting import CompiledHistGB, CompiledLGBM, CompiledXGB

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")


def _data(rows: int, seed: int, missing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 8))
    X[:, 3] = np.where(rng.random(rows) < 0.3, 0.0, X[:, 3])  # exact zeros
    X[:, 5] = rng.integers(0, 5, rows)  # a label-coded column: many zeros
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    clean = np.nan_to_num(X)
    y = clean[:, 0] + clean[:, 1] * clean[:, 2] - 0.5 * (clean[:, 5] == 0) + rng.normal(size=rows) > 0
    return X, y.astype(int)


def _batches(seed: int) -> dict[str, np.ndarray]:
    """Finite rows (the lockstep kernel), rows with NaN (the row kernel), and edge rows of both."""
    finite, _ = _data(3000, seed)
    with_nan, _ = _data(3000, seed + 1, missing=0.15)
    finite[0] = 0.0
    finite[1] = 1e-36  # within LightGBM's zero threshold
    finite[2] = -1e300
    with_nan[0] = np.nan
    return {"finite": finite, "with NaN": with_nan}


def _assert_equal_at_every_size(predict, expected_of, rows):
    expected = expected_of(rows)
    for part in (slice(None), slice(0, 1), slice(0, 17), slice(5, 2100)):  # 16-row blocks, full and partial
        np.testing.assert_allclose(predict(rows[part]), expected[part], rtol=0, atol=1e-9)
    # thread-split ranges give every row the same sum
    np.testing.assert_allclose(predict(np.vstack([rows] * 3)), np.tile(expected, 3), rtol=0, atol=1e-9)


LGBM = {
    "defaults": {},
    "small leaves, bagging, column sampling": {
        "n_estimators": 120,
        "num_leaves": 15,
        "subsample": 0.8,
        "subsample_freq": 1,
        "colsample_bytree": 0.7,
    },
    "extra trees, zero as missing": {"n_estimators": 60, "extra_trees": True, "zero_as_missing": True},
    "missing values not used": {"n_estimators": 40, "use_missing": False},
    "deep leaf-wise trees": {"n_estimators": 80, "num_leaves": 127, "min_child_samples": 2},
    "one tree, scaled sigmoid": {"n_estimators": 1, "objective": "binary", "sigmoid": 2.5},
}


@pytest.mark.parametrize("name", list(LGBM))
@pytest.mark.parametrize("trained_on", ["finite", "with NaN"])
def test_compiled_lightgbm_equals_predict_proba(name, trained_on):
    X, y = _data(2000, 0, missing=0.15 if trained_on == "with NaN" else 0.0)
    model = lightgbm.LGBMClassifier(random_state=0, verbose=-1, n_jobs=1, **LGBM[name]).fit(X, y)
    compiled = CompiledLGBM.compile(model)
    assert compiled is not None
    for rows in _batches(3).values():
        _assert_equal_at_every_size(compiled.predict_positive, lambda r: model.predict_proba(r)[:, 1], rows)


@pytest.mark.parametrize("trained_on", ["finite", "with NaN"])
def test_compiled_histgb_equals_predict_proba(trained_on):
    X, y = _data(3000, 2, missing=0.05 if trained_on == "with NaN" else 0.0)
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(X, y)
    compiled = CompiledHistGB.compile(model)
    assert compiled is not None
    for rows in _batches(5).values():
        _assert_equal_at_every_size(compiled.predict_positive, lambda r: model.predict_proba(r)[:, 1], rows)


XGB = {
    "defaults": {},
    "deep, slow, subsampled": {"max_depth": 8, "n_estimators": 300, "learning_rate": 0.05, "subsample": 0.8},
    "base score 0.3, column sampling": {"base_score": 0.3, "n_estimators": 50, "colsample_bytree": 0.6},
    "one stump": {"n_estimators": 1, "max_depth": 1},
}


@pytest.mark.parametrize("name", list(XGB))
@pytest.mark.parametrize("trained_on", ["finite", "with NaN"])
def test_compiled_xgboost_equals_predict_proba_bit_for_bit(name, trained_on):
    """XGBoost answers in float32: the compiled model gives the same float32 numbers (1e-9 is below one ulp)."""
    X, y = _data(2000, 0, missing=0.15 if trained_on == "with NaN" else 0.0)
    model = xgboost.XGBClassifier(random_state=0, n_jobs=1, **XGB[name]).fit(X, y)
    compiled = CompiledXGB.compile(model)
    assert compiled is not None
    for rows in _batches(3).values():
        _assert_equal_at_every_size(compiled.predict_positive, lambda r: model.predict_proba(r)[:, 1], rows)
        np.testing.assert_array_equal(compiled.predict_positive(rows), model.get_booster().inplace_predict(rows))


def test_models_the_kernels_have_no_rule_for_are_left_to_their_library():
    X, y = _data(1500, 0)
    X[:, 4] = np.random.default_rng(2).integers(0, 6, len(X))
    y = (y | (X[:, 4] == 3)).astype(int)
    categorical = lightgbm.LGBMClassifier(random_state=0, verbose=-1, n_jobs=1, n_estimators=30)
    assert CompiledLGBM.compile(categorical.fit(X, y, categorical_feature=[4])) is None
    linear = lightgbm.LGBMClassifier(verbose=-1, n_jobs=1, n_estimators=5, linear_tree=True).fit(X, y)
    assert CompiledLGBM.compile(linear) is None
    histgb = HistGradientBoostingClassifier(max_iter=5, categorical_features=[4]).fit(X, y)
    assert CompiledHistGB.compile(histgb) is None
    dart = xgboost.XGBClassifier(booster="dart", n_estimators=5, n_jobs=1).fit(X, y)
    assert CompiledXGB.compile(dart) is None
    stopped = xgboost.XGBClassifier(n_estimators=50, early_stopping_rounds=2, n_jobs=1)
    stopped.fit(X[:1000], y[:1000], eval_set=[(X[1000:], y[1000:])], verbose=False)
    assert CompiledXGB.compile(stopped) is None  # predict_proba stops at the best iteration


def test_wrong_width_is_refused_naming_the_expected_columns():
    X, y = _data(500, 0)
    lgbm = CompiledLGBM.compile(lightgbm.LGBMClassifier(verbose=-1, n_estimators=5).fit(X, y))
    histgb = CompiledHistGB.compile(HistGradientBoostingClassifier(max_iter=5).fit(X, y))
    xgb = CompiledXGB.compile(xgboost.XGBClassifier(n_estimators=5, n_jobs=1).fit(X, y))
    for compiled in (lgbm, histgb, xgb):
        with pytest.raises(ValueError, match="8 feature columns"):
            compiled.predict_positive(X[:, :3])


def test_finite_batches_walk_in_lockstep_and_others_row_by_row(monkeypatch):
    """The fast path is taken where it is exact, and only there (LightGBM's Zero-missing splits near 0)."""
    from churn.fast_forest import LockstepTrees

    walked: list[int] = []
    add_to = LockstepTrees.add_to
    monkeypatch.setattr(
        LockstepTrees,
        "add_to",
        lambda self, x, out, threads=None: walked.append(len(x)) or add_to(self, x, out, threads),
    )
    X, y = _data(2000, 0)
    plain = CompiledLGBM.compile(lightgbm.LGBMClassifier(verbose=-1, n_jobs=1, n_estimators=20).fit(X, y))
    zero_missing = CompiledLGBM.compile(
        lightgbm.LGBMClassifier(verbose=-1, n_jobs=1, n_estimators=20, zero_as_missing=True).fit(X, y)
    )
    rows = _batches(3)
    plain.predict_positive(rows["finite"])
    assert walked == [3000]
    plain.predict_positive(rows["with NaN"])
    assert walked == [3000]  # NaN: the row kernel
    assert len(zero_missing.booster.zero_columns)  # columns 3 and 5 hold zeros that go the default side
    zero_missing.predict_positive(rows["finite"])
    assert walked == [3000]  # zeros in those columns: the row kernel
    away_from_zero = rows["finite"].copy()
    away_from_zero[:, zero_missing.booster.zero_columns] += 0.5
    zero_missing.predict_positive(away_from_zero)
    assert walked == [3000, 3000]
