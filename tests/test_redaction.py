"""Redaction over a corpus of secret shapes, and of innocent strings that must stay readable."""

from __future__ import annotations

import json
import logging

import pytest

from churn.aws.clients import redact as aws_redact
from churn.redaction import install_log_redaction, redact, redact_then_truncate

# Built from parts so no scanner mistakes this file for a leak; all are documented examples or made up.
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD" + "Zx9aB3" * 40
GITHUB = "ghp_" + "16C7e42F292c6912E7710c838347Ae178B4a"
SLACK = "xoxb-" + "1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
JWT = "eyJhbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0" + "." + "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
PEM = (
    "-----BEGIN RSA "
    + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo\n4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n-----END RSA "
    + "PRIVATE KEY-----"
)

SECRETS = [
    # (text, the secret part that must not survive, what must stay readable)
    (f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET, "AWS_SECRET_ACCESS_KEY="),
    (f"export AWS_SECRET_ACCESS_KEY='{AWS_SECRET}'", AWS_SECRET, "AWS_SECRET_ACCESS_KEY="),
    (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_access_key"),
    (f"the key {AWS_SECRET} leaked", AWS_SECRET, "leaked"),
    (f"client with {AWS_KEY_ID}", AWS_KEY_ID, "client with"),
    (f"AWS_SESSION_TOKEN={SESSION_TOKEN}", SESSION_TOKEN[:60], "AWS_SESSION_TOKEN="),
    (f"token in prose {SESSION_TOKEN} end", SESSION_TOKEN[:60], "end"),
    ("postgresql://mlflow:s3cr3t-P%40ss@db.internal:5432/mlflow", "s3cr3t-P%40ss", "postgresql://mlflow:"),
    ("https://ci:hunter2@mlflow.example.com/api", "hunter2", "@mlflow.example.com/api"),
    (f"cloned with {GITHUB}", GITHUB, "cloned with"),
    (f"webhook {SLACK}", SLACK, "webhook"),
    (f"session {JWT}", JWT, "session"),
    (f"Authorization: Bearer {GITHUB[4:]}", GITHUB[4:], "Authorization: Bearer"),
    ("curl -H 'Authorization: Basic dXNlcjpodW50ZXIy'", "dXNlcjpodW50ZXIy", "Authorization"),
    (f"key file:\n{PEM}\nnext line", "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo", "next line"),
    (PEM[:80], "MIIEpAIBAAKCAQEAu1SU1", "[REDACTED"),  # a block cut off before its END line
    ("password=hunter2 and more", "hunter2", "and more"),
    ("db_password: correct-horse", "correct-horse", "db_password"),
    ("secret=abc123&region=us-east-1", "abc123", "region=us-east-1"),
    ("https://host/cb?token=tok_9f8e7d&page=2", "tok_9f8e7d", "page=2"),
    (json.dumps({"password": "hunter 2", "user": "ci"}), "hunter 2", '"user": "ci"'),
    (json.dumps({"client_secret": 'abc"def', "api_key": "k-123"}), "k-123", "client_secret"),
    ("{'api_key': 'k-456', 'name': 'x'}", "k-456", "'name': 'x'"),
    (
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKID%2F2026&X-Amz-Signature=abcdef0123",
        "abcdef0123",
        "X-Amz-Signature=",
    ),
]

INNOCENT = [
    "bucket churn-mlops-artifacts-eu-west-1",
    "s3://my-team-bucket/mlops/classification_model/registry/20260101T000000Z-9f86d081884c/model.tar.gz",
    "a forty-character lowercase bucket: abcdefghij0123456789abcdefghij0123456789",
    "customers CUST_004001..CUST_005000",
    "bundle_sha256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "data fingerprint " + "F" * 64,
    "commit 0123456789abcdef0123456789abcdef01234567, MLflow run 8b1f0c2e4a1d4d0b9d1e0c1a2b3c4d5e",
    "run 8b1f0c2e-4a1d-4d0b-9d1e-0c1a2b3c4d5e",
    "arn:aws:sagemaker:us-east-1:123456789012:model-package/classification-model-group/3",
    "the token expired; refresh your password and retry",
    "Pipeline: churn_rf_training\nStep: deploy\nError: DeploymentError: the endpoint did not pass its health check",
]


@pytest.mark.parametrize("text, secret, kept", SECRETS, ids=[s[2][:24] for s in SECRETS])
def test_every_secret_shape_is_masked_and_its_context_kept(text, secret, kept):
    clean = redact(text)
    assert secret not in clean and "[REDACTED" in clean
    assert kept in clean
    assert redact(clean) == clean  # idempotent: redacting twice changes nothing more


@pytest.mark.parametrize("text", INNOCENT)
def test_innocent_strings_stay_readable(text):
    assert redact(text) == text


def test_the_aws_module_uses_the_same_redaction():
    assert aws_redact(f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}") == redact(f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}")


def test_redaction_happens_before_truncation():
    text = "x" * 30 + f" leaked {AWS_SECRET}"  # a bare secret key: recognised only whole
    cut = redact_then_truncate(text, 60)
    assert len(cut) <= 60 and AWS_SECRET[:10] not in cut
    # truncating first would have left a prefix of the secret no pattern recognises any more
    assert AWS_SECRET[:10] in redact(text[:60])


def test_log_lines_are_redacted_whatever_logger_or_handler_writes_them(caplog):
    install_log_redaction()
    with caplog.at_level(logging.INFO):
        logging.getLogger("some.library").info("connecting with %s", f"password={AWS_SECRET}")
        try:
            raise RuntimeError(f"boom {GITHUB}")
        except RuntimeError:
            logging.getLogger("another").exception("failed")
    assert AWS_SECRET not in caplog.text and GITHUB not in caplog.text and "password=[REDACTED]" in caplog.text
    assert "RuntimeError: boom [REDACTED]" in caplog.text
