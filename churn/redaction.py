"""Masking secrets in text we send or log (alerts, error messages, log lines).

One backend-neutral function, :func:`redact`, used by every alerter and, through
:func:`install_log_redaction`, by every log record our processes write. It masks:

- private key blocks (``-----BEGIN ... PRIVATE KEY-----`` to its END line, or to the end
  of the text when the block was cut off);
- passwords in URLs (``scheme://user:PASSWORD@host`` keeps the user and host);
- ``Authorization`` schemes (``Bearer ...``, ``Basic ...``);
- key/value pairs whose key names a secret (``AWS_SECRET_ACCESS_KEY=...``,
  ``password: ...``, ``?token=...``, JSON ``"client_secret": "..."``, ``X-Amz-Signature=``);
  the key stays readable, the value is masked;
- token formats that are secret on their own: AWS access key ids (``AKIA``/``ASIA``...),
  GitHub (``ghp_``, ``gho_``, ``ghs_``, ``github_pat_``...), Slack (``xoxb-`` ...), JWTs
  (``eyJ...``.``eyJ...``.``...``), long base64 runs (AWS session tokens are 300+
  characters), and 40-character base64 strings shaped like an AWS secret access key.

Deliberately left readable (an operator needs them, and none is a credential): bucket
names and S3 URIs, customer ids (``CUST_004001``), hexadecimal digests (bundle sha256,
git commits, MLflow run ids, UUIDs), ARNs, account ids, model names, and the names of
secret-bearing keys themselves. A 40-character name that is all lowercase letters and
digits (a bucket, a hex digest) is not mistaken for a secret key; prose that merely
mentions a password or token (``the token expired``) is left alone, because only a
``key=value`` / ``key: value`` shape marks a value as secret.

Redact before truncating: a cut-off secret may no longer match any of these shapes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

MASK = "[REDACTED]"

_PRIVATE_KEY = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END \1-----|\Z)", re.S)
_URL_PASSWORD = re.compile(r"\b([a-z][a-z0-9+.\-]*://[^\s:/@?#]+:)([^\s@/?#]+)(@)", re.I)
_SCHEMES = ("bearer", "basic", "digest", "token")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic|Digest|Token)(\s+)([A-Za-z0-9\-._~+/]{8,}=*)", re.I)
# key names that mark their value as a secret; the key may carry any prefix/suffix (AWS_..., db_..._2)
_SECRET_WORDS = (
    r"secret|passw(?:or)?d|pwd|passphrase|token|api[_\-]?key|access[_\-]?key|private[_\-]?key"
    r"|credentials?|signature|authorization|session[_\-]?key|client[_\-]?key"
)
_KEY = rf"[A-Za-z0-9_.\-]*(?:{_SECRET_WORDS})[A-Za-z0-9_.\-]*"
# "key": "value" / 'key': 'value' / key="value" (JSON, Python reprs, quoted env values)
_QUOTED_PAIR = re.compile(rf"""(["']?)\b({_KEY})\1(\s*[:=]\s*)(["'])(.*?)(?<!\\)\4""", re.I)
# key=value / key: value (env, URL query, headers, YAML); the value ends at a space or delimiter
_PLAIN_PAIR = re.compile(rf"""\b({_KEY})(\s*[:=]\s*|\s*=>\s*)(?!["'])([^\s"'&,;<>)\]}}]+)""", re.I)
_TOKEN_FORMATS = [
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),  # GitHub
    re.compile(r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),  # Slack
    re.compile(r"\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}"),  # JWT
    re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),  # Stripe-style keys
    re.compile(r"\bAIza[A-Za-z0-9_\-]{35}"),  # Google API keys
]
_ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b")
_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{100,}={0,2}(?![A-Za-z0-9/+=])")
_SECRET_KEY = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")
_HEX = re.compile(r"[0-9a-fA-F]+")


def _keep_readable(candidate: str) -> bool:
    """A long token that is a digest or a lowercase name, not a credential."""
    return bool(_HEX.fullmatch(candidate)) or (candidate.isalnum() and candidate.islower())


def _mask_value(value: str) -> str:
    return value if value.startswith("[REDACTED") else MASK


def _mask_pair(m: re.Match[str]) -> str:
    value = m.group(3)
    if value.lower() in _SCHEMES and m.string.startswith(MASK, m.end() + 1):
        return m.group(0)  # "Authorization: Bearer [REDACTED]": the scheme stays readable
    return f"{m.group(1)}{m.group(2)}{_mask_value(value)}"


def redact(text: Any) -> str:
    """``text`` with every secret-shaped part replaced by ``[REDACTED]`` (see the module doc)."""
    text = str(text)
    text = _PRIVATE_KEY.sub("[REDACTED-PRIVATE-KEY]", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _QUOTED_PAIR.sub(
        lambda m: f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{_mask_value(m.group(5))}{m.group(4)}",
        text,
    )
    text = _PLAIN_PAIR.sub(_mask_pair, text)
    for pattern in _TOKEN_FORMATS:
        text = pattern.sub(MASK, text)
    text = _ACCESS_KEY.sub("[REDACTED-ACCESS-KEY]", text)
    text = _BASE64_RUN.sub(lambda m: m.group(0) if _keep_readable(m.group(0)) else MASK, text)
    return _SECRET_KEY.sub(lambda m: m.group(0) if _keep_readable(m.group(0)) else MASK, text)


def redact_then_truncate(text: Any, limit: int, marker: str = "...") -> str:
    """Redacted ``text`` cut to at most ``limit`` characters (redaction first, so no half secret survives)."""
    clean = redact(text)
    return clean if len(clean) <= limit else clean[: max(0, limit - len(marker))] + marker


# -- log lines ---------------------------------------------------------------------------
_install_lock = threading.Lock()
_installed = False


def _redacting_factory(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is left to logging's own handling
            pass
        return record

    factory.churn_redacting = True  # type: ignore[attr-defined]
    return factory


def install_log_redaction() -> None:
    """Redact every log record this process creates, whatever logger or handler writes it.

    Installed as the log-record factory, so it also covers handlers added later (ZenML's
    step-log capture, CloudWatch). Idempotent.
    """
    global _installed
    with _install_lock:
        current = logging.getLogRecordFactory()
        if _installed and getattr(current, "churn_redacting", False):
            return
        logging.setLogRecordFactory(_redacting_factory(current))
        _installed = True
