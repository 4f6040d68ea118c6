"""PreprocessData: stratified split, then fit the spec's preprocessing on the training rows."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from churn.preprocessing import Preprocessor, split_train_test
from churn.report_html import data_profile_html
from materializers.preprocessor_materializer import PreprocessorMaterializer
from steps.caching import TRAINING_CACHE


@step(cache_policy=TRAINING_CACHE, output_materializers={"preprocessor": PreprocessorMaterializer})
def preprocess(
    raw_features: pd.DataFrame, target_column: str, test_size: float, random_state: int
) -> tuple[
    Annotated[pd.DataFrame, "train_set"],
    Annotated[pd.DataFrame, "test_set"],
    Annotated[Preprocessor, "preprocessor"],
    Annotated[HTMLString, "data_profile"],
]:
    """Split 80/20 stratified by the target and fit imputation + label encoding on the train split.

    The preprocessor is fitted on training rows only (no test-set leakage); the same
    fitted state travels in the model bundle and is applied at evaluation and inference.

    Args:
        raw_features: The records read by ``source_features``.
        target_column: The 0/1 target column.
        test_size: Fraction of rows held out for evaluation.
        random_state: Seed of the split.

    Returns:
        The training rows, the test rows, the fitted preprocessor and a profile of the training data.

    Raises:
        churn.preprocessing.InputError: The target is missing or has one class, or no feature is left.
    """
    split = split_train_test(raw_features, target_column, test_size, random_state)
    preprocessor = Preprocessor.fit(split.train, target_column)
    log_metadata(metadata={"split": split.info, "features": preprocessor.feature_order})
    print(
        f"Split {split.info['rows']} rows into {split.info['train_rows']} train / {split.info['test_rows']} test; "
        f"{len(preprocessor.medians)} numeric and {len(preprocessor.classes)} categorical features"
    )
    profiled = [c for c in split.train if c in preprocessor.feature_order + [target_column]]
    profile = data_profile_html(
        split.train[profiled], target_column, f"Training data profile ({split.info['train_rows']} rows)"
    )
    return split.train, split.test, preprocessor, HTMLString(profile)
