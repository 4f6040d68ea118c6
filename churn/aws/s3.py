"""Small S3 helpers: URIs, upload/download, and removing a prefix."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from churn.aws.clients import AwsError, aws_errors, client

_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/.*)?$")


def parse_s3_uri(uri: str) -> Tuple[str, str]:
    """``s3://bucket/key/part`` -> (bucket, "key/part")."""
    match = _S3_URI.match(uri or "")
    if not match:
        raise AwsError(f"{uri!r} is not an S3 URI like s3://bucket/prefix/")
    return match.group(1), (match.group(2) or "/").lstrip("/")


def join(*parts: str) -> str:
    """Join S3 URI parts with single slashes (``join("s3://b/p/", "x")`` -> ``s3://b/p/x``)."""
    head, *rest = parts
    out = head.rstrip("/")
    for part in rest:
        part = str(part).strip("/")
        if part:
            out += "/" + part
    return out


def upload_bytes(data: bytes, uri: str, region: str, profile: Optional[str] = None,
                 content_type: str = "application/octet-stream") -> str:
    bucket, key = parse_s3_uri(uri)
    with aws_errors(f"uploading {uri}"):
        client("s3", region, profile).put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
    return uri


def upload_file(path: str | os.PathLike, uri: str, region: str, profile: Optional[str] = None) -> str:
    bucket, key = parse_s3_uri(uri)
    with aws_errors(f"uploading {path} to {uri}"):
        client("s3", region, profile).upload_file(str(path), bucket, key)
    return uri


def read_bytes(uri: str, region: str, profile: Optional[str] = None) -> bytes:
    bucket, key = parse_s3_uri(uri)
    with aws_errors(f"reading {uri}"):
        return client("s3", region, profile).get_object(Bucket=bucket, Key=key)["Body"].read()


def list_keys(uri: str, region: str, profile: Optional[str] = None) -> List[str]:
    bucket, prefix = parse_s3_uri(uri)
    keys: List[str] = []
    with aws_errors(f"listing {uri}"):
        for page in client("s3", region, profile).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def download_prefix(uri: str, directory: str | os.PathLike, region: str, profile: Optional[str] = None) -> Path:
    """Download every object under ``uri`` (a "directory") into ``directory``."""
    bucket, prefix = parse_s3_uri(uri)
    prefix = prefix.rstrip("/") + "/"
    directory = Path(directory)
    s3 = client("s3", region, profile)
    keys = list_keys(f"s3://{bucket}/{prefix}", region, profile)
    if not keys:
        raise AwsError(f"nothing found under {uri}")
    with aws_errors(f"downloading {uri}"):
        for key in keys:
            target = directory / key[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
    return directory


def delete_prefix(uri: str, region: str, profile: Optional[str] = None,
                  progress: Optional[Callable[[str], None]] = None) -> int:
    """Delete every object under ``uri``; returns how many were deleted."""
    bucket, prefix = parse_s3_uri(uri)
    if not prefix.strip("/"):
        raise AwsError(f"refusing to delete a whole bucket ({uri}); give a prefix")
    keys = list_keys(uri, region, profile)
    s3 = client("s3", region, profile)
    with aws_errors(f"deleting objects under {uri}"):
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            if progress:
                progress(f"deleted {start + len(chunk)}/{len(keys)} objects under {uri}")
    return len(keys)
