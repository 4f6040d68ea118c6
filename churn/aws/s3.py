"""Small S3 helpers: URIs, upload/download, and removing a prefix."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable
from pathlib import Path

from churn.aws.clients import AwsError, aws_errors, client

_S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/.*)?$")


def parse_s3_uri(uri: str) -> tuple[str, str]:
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


def upload_bytes(
    data: bytes, uri: str, region: str, profile: str | None = None, content_type: str = "application/octet-stream"
) -> str:
    bucket, key = parse_s3_uri(uri)
    with aws_errors(f"uploading {uri}"):
        client("s3", region, profile).put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
    return uri


def upload_file(path: str | os.PathLike, uri: str, region: str, profile: str | None = None) -> str:
    bucket, key = parse_s3_uri(uri)
    with aws_errors(f"uploading {path} to {uri}"):
        client("s3", region, profile).upload_file(str(path), bucket, key)
    return uri


def read_bytes(uri: str, region: str, profile: str | None = None) -> bytes:
    bucket, key = parse_s3_uri(uri)
    with aws_errors(f"reading {uri}"):
        return client("s3", region, profile).get_object(Bucket=bucket, Key=key)["Body"].read()


def list_keys(uri: str, region: str, profile: str | None = None) -> list[str]:
    bucket, prefix = parse_s3_uri(uri)
    keys: list[str] = []
    with aws_errors(f"listing {uri}"):
        for page in (
            client("s3", region, profile).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        ):
            keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


def download_prefix(uri: str, directory: str | os.PathLike, region: str, profile: str | None = None) -> Path:
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
            target = directory / key[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, key, str(target))
    return directory


def delete_prefix(
    uri: str, region: str, profile: str | None = None, progress: Callable[[str], None] | None = None
) -> int:
    """Delete every object under ``uri``; returns how many were deleted."""
    bucket, prefix = parse_s3_uri(uri)
    if not prefix.strip("/"):
        raise AwsError(f"refusing to delete a whole bucket ({uri}); give a prefix")
    keys = list_keys(uri, region, profile)
    s3 = client("s3", region, profile)
    with aws_errors(f"deleting objects under {uri}"):
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})
            if progress:
                progress(f"deleted {start + len(chunk)}/{len(keys)} objects under {uri}")
    return len(keys)


class AtomicS3Writer(io.RawIOBase):
    """A write-only file on S3 that appears at its key only when complete.

    A multipart upload: bytes are buffered into parts of ``part_bytes`` (S3's minimum is
    5 MiB, except for the last part) and uploaded as they fill; ``commit()`` completes the
    upload, which is when the object appears, whole. ``abort()`` (or leaving the ``with``
    block with an exception) aborts it: nothing is left at the key, no parts are billed.
    Memory stays at one part, whatever the object's size.
    """

    MIN_PART = 5 * 1024 * 1024

    def __init__(
        self,
        uri: str,
        region: str,
        profile: str | None = None,
        part_bytes: int = 8 * 1024 * 1024,
        content_type: str = "application/octet-stream",
    ):
        super().__init__()
        self.uri, self.bucket, self.key = uri, *parse_s3_uri(uri)
        self._s3 = client("s3", region, profile)
        self.part_bytes = max(self.MIN_PART, int(part_bytes))
        self._buffer = bytearray()
        self._parts: list[dict] = []
        self._position = 0
        with aws_errors(f"starting the upload of {uri}"):
            self._upload_id = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=content_type
            )["UploadId"]

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def write(self, data) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError(f"write to {self.uri} after it was committed or aborted")
        view = memoryview(data).cast("B")
        self._buffer += view
        self._position += len(view)
        while len(self._buffer) >= self.part_bytes:
            self._upload(bytes(self._buffer[: self.part_bytes]))
            del self._buffer[: self.part_bytes]
        return len(view)

    def _upload(self, body: bytes) -> None:
        number = len(self._parts) + 1
        with aws_errors(f"uploading part {number} of {self.uri}"):
            etag = self._s3.upload_part(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=body
            )["ETag"]
        self._parts.append({"ETag": etag, "PartNumber": number})

    def commit(self) -> None:
        """Upload what is buffered and complete the upload: the object appears at its key."""
        if self._buffer or not self._parts:
            self._upload(bytes(self._buffer))
            self._buffer.clear()
        with aws_errors(f"completing the upload of {self.uri}"):
            self._s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        super().close()

    def abort(self) -> None:
        """Drop the upload: nothing appears at the key."""
        if self.closed:
            return
        self._buffer.clear()
        try:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        finally:
            super().close()

    def close(self) -> None:
        """Closing without commit() aborts: only an explicit commit publishes the object."""
        self.abort()

    def __exit__(self, kind, value, traceback) -> None:  # type: ignore[override]
        if kind is None and not self.closed:
            self.commit()
        else:
            self.abort()
