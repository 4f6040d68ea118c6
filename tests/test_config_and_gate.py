import pytest

from churn.config import ConfigError, load_config, parse_config
from churn.evaluation import check_quality, classification_metrics


def test_shipped_config_is_valid_and_has_spec_keys():
    config = load_config("configs/rf.yaml")
    assert config.accuracy_threshold == 0.5 and config.approval_status == "Approved"
    assert (config.customer_id_start, config.customer_id_end) == (1, 4000)
    assert config.hyperparameters.n_estimators == 100 and config.hyperparameters.max_depth == 10
    assert config.endpoint_name == "classification-model-endpoint"


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"accuracy_threshold": 1.7}, "key 'accuracy_threshold'.*1.7"),
        ({"hyperparameters": {"max_depth": -1}}, "key 'hyperparameters.max_depth'.*-1"),
        ({"acuracy_threshold": 0.5}, "unknown key 'acuracy_threshold'"),
        ({"hyperparameters": {"n_trees": 5}}, "unknown key 'hyperparameters.n_trees'"),
        ({"approval_status": "Yes"}, "key 'approval_status'"),
        (
            {"customer_id_start": 10, "customer_id_end": 5},
            "customer_id_end \\(5\\) is below customer_id_start \\(10\\)",
        ),
        ({"bucket": "AKIAABCDEFGHIJKLMNOP"}, "config key 'bucket' looks like an AWS credential"),
    ],
)
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


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"customer_id_start": 1_000_000}, r"key 'customer_id_start': customer ids are 0-999,999 .*\(got 1000000\)"),
        ({"customer_id_end": -1}, r"key 'customer_id_end': customer ids are 0-999,999 .*\(got -1\)"),
        ({"random_state": -1}, r"key 'random_state'.*greater than or equal to 0 \(got -1\)"),
        ({"as_of": "2026-01-31"}, r"key 'as_of': as_of must be an ISO-8601 UTC timestamp"),
        ({"autoscaling_min_capacity": 3, "autoscaling_max_capacity": 2}, r"autoscaling_max_capacity \(2\) is below"),
        ({"inference_instance_type": "m5.xlarge"}, r"key 'inference_instance_type'"),
        ({"bucket": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}, "config key 'bucket' looks like an AWS credential"),
    ],
)
def test_bad_values_are_refused_at_load_time_naming_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)


def test_config_or_cli_customer_ids_out_of_range_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("customer_id_end: 1000000\n")
    with pytest.raises(ConfigError, match=r"c.yaml: key 'customer_id_end': customer ids are 0-999,999"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"key 'customer_id_start': customer ids"):
        load_config("configs/rf.yaml", customer_id_start=-5)  # run.py / callers pass CLI values as overrides


def test_an_ordinary_40_character_bucket_name_is_not_a_credential():
    bucket = "churn-models-eu-west-1-team-analytics-42"
    assert len(bucket) == 40 and parse_config({"bucket": bucket}).bucket == bucket
    from churn.aws.settings import parse_stack_settings

    settings = parse_stack_settings(
        {"region": "us-west-2", "bucket": bucket, "role_arn": "arn:aws:iam::123456789012:role/ML-Role-Pipelines"}
    )
    assert settings.bucket == bucket
    with pytest.raises(ConfigError, match="'bucket' looks like an AWS credential"):
        parse_stack_settings(
            {
                "region": "us-west-2",
                "bucket": "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY12",
                "role_arn": "arn:aws:iam::123456789012:role/ML-Role-Pipelines",
            }
        )


def test_duplicate_keys_are_refused_with_their_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("accuracy_threshold: 0.5\nendpoint_name: a\naccuracy_threshold: 0.9\n")
    with pytest.raises(ConfigError, match=r"key 'accuracy_threshold' appears twice \(lines 1 and 3\)"):
        load_config(path)
    nested = tmp_path / "nested.yaml"
    nested.write_text("hyperparameters:\n  max_depth: 3\n  max_depth: 4\n")
    with pytest.raises(ConfigError, match=r"key 'max_depth' appears twice \(lines 2 and 3\)"):
        load_config(nested)


def test_a_non_utf8_file_is_refused_with_a_message(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("project_name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is not UTF-8 text \(byte 0xe9 on line 1\)"):
        load_config(path)


def test_an_unquoted_timestamp_as_of_is_read_as_utc_and_a_bare_date_is_refused(tmp_path):
    path = tmp_path / "asof.yaml"
    path.write_text("as_of: 2026-01-31 10:00:00\n")
    assert load_config(path).as_of == "2026-01-31T10:00:00Z"
    path.write_text("as_of: 2026-01-31T10:00:00+02:00\n")
    assert load_config(path).as_of == "2026-01-31T08:00:00Z"
    path.write_text("as_of: 2026-01-31\n")
    with pytest.raises(ConfigError, match=r"key 'as_of': as_of is a date \(2026-01-31\); give the moment"):
        load_config(path)


def test_account_level_keys_in_a_pipeline_config_are_reported_by_name(tmp_path, caplog):
    path = tmp_path / "spec.yaml"
    path.write_text("region: us-west-2\nbucket: my-bucket\nendpoint_name: e\n")
    with caplog.at_level("WARNING", logger="churn.config"):
        load_config(path)
    assert "region, bucket have no effect in a pipeline config; the stack config sets them" in caplog.text


def test_the_budgets_of_the_two_automl_engines_are_separate():
    config = load_config("configs/automl.yaml")
    assert config.max_runtime_sec == 300 and config.autopilot_max_runtime_sec == 3600
    from churn.automl import AutoMLSettings
    from churn.aws.autopilot_job import AutopilotConfig, AutopilotEngine

    settings = AutoMLSettings.from_config(config.model_dump())
    assert settings.max_runtime_sec == 300 and settings.autopilot_max_runtime_sec == 3600
    request = AutopilotEngine.job_request(
        "job",
        settings,
        "churn",
        {"train_prefix": "s3://b/p/", "output_prefix": "s3://b/o/"},
        AutopilotConfig(region="us-west-2", role_arn="arn:aws:iam::123456789012:role/R", bucket="b", prefix="p"),
    )
    criteria = request["AutoMLProblemTypeConfig"]["TabularJobConfig"]["CompletionCriteria"]
    assert criteria["MaxAutoMLJobRuntimeInSeconds"] == 3600
