import pytest

from churn.config import ConfigError, load_config, parse_config
from churn.evaluation import check_quality, classification_metrics


def test_shipped_config_is_valid_and_has_spec_keys():
    config = load_config("configs/rf.yaml")
    assert config.accuracy_threshold == 0.5 and config.approval_status == "Approved"
    assert (config.customer_id_start, config.customer_id_end) == (1, 4000)
    assert config.hyperparameters.n_estimators == 100 and config.hyperparameters.max_depth == 10
    assert config.endpoint_name == "classification-model-endpoint"


@pytest.mark.parametrize("raw, message", [
    ({"accuracy_threshold": 1.7}, "key 'accuracy_threshold'.*1.7"),
    ({"hyperparameters": {"max_depth": -1}}, "key 'hyperparameters.max_depth'.*-1"),
    ({"acuracy_threshold": 0.5}, "unknown key 'acuracy_threshold'"),
    ({"hyperparameters": {"n_trees": 5}}, "unknown key 'hyperparameters.n_trees'"),
    ({"approval_status": "Yes"}, "key 'approval_status'"),
    ({"customer_id_start": 10, "customer_id_end": 5}, "customer_id_end \\(5\\) is below customer_id_start \\(10\\)"),
    ({"bucket": "AKIAABCDEFGHIJKLMNOP"}, "config key 'bucket' looks like an AWS credential"),
])
def test_bad_config_is_refused_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("accuracy_threshold: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_metrics_have_the_spec_shape():
    report = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.7, 0.9])
    assert report["accuracy"] == 0.75 and report["precision"] == pytest.approx(2 / 3) and report["recall"] == 1.0
    assert report["roc_auc"] == 1.0 and report["confusion_matrix"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 2}
    assert classification_metrics([0, 0], [0.2, 0.7])["roc_auc"] is None  # one class: not applicable


def test_gate_passes_at_threshold_and_fails_below_or_missing():
    assert check_quality({"accuracy": 0.5}, "accuracy", 0.5).passed
    failed = check_quality({"accuracy": 0.49}, "accuracy", 0.5)
    assert not failed.passed and "not registered and not deployed" in failed.message
    assert not check_quality({"roc_auc": None}, "roc_auc", 0.5).passed
    with pytest.raises(ValueError, match="gate metric must be one of"):
        check_quality({}, "loss", 0.5)
