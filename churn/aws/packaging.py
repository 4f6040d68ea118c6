"""The model.tar.gz our image serves, and the container definitions that serve it.

Layout (SageMaker extracts it to /opt/ml/model)::

    bundle.json, estimator.joblib      the model bundle, as ``ModelBundle.save`` wrote it

The code and its libraries are the image's (``docker/Dockerfile``, built from
requirements.lock; ``churn.image``), not the archive's. The archive is deterministic (sorted
members, zero mtimes), so the same bundle always gives the same bytes. The bundle's sha256
is checked before anything is packaged, and our containers' Environment carries it
(``CHURN_BUNDLE_SHA256``): the container verifies the extracted bundle before loading it
(``churn.serving.container``).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from churn.aws import s3
from churn.bundle import BUNDLE_FILE, ESTIMATOR_FILE, BundleError, bundle_sha256

SHA_ENV = "CHURN_BUNDLE_SHA256"  # read by churn.serving.container
MAX_CONTAINERS = 15  # SageMaker's limit for one model / model package


def fetch_bundle(uri: str, workdir: str | os.PathLike, region: str, profile: str | None = None) -> Path:
    """A local directory holding the bundle at ``uri`` (local path, file://, s3:// or an MLflow artifact URI)."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme else uri)
        if not path.is_dir():
            raise BundleError(f"model bundle {uri} is not a directory")
        return path
    target = Path(workdir) / "bundle"
    if parsed.scheme == "s3":
        return s3.download_prefix(uri, target, region, profile)
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(target)))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def build_model_tarball(
    bundle_dir: str | os.PathLike, output: str | os.PathLike, expected_sha256: str | None = None
) -> dict[str, object]:
    """Write model.tar.gz for ``bundle_dir``; return its members and the bundle's sha256."""
    bundle_dir = Path(bundle_dir)
    for name in (BUNDLE_FILE, ESTIMATOR_FILE):
        if not (bundle_dir / name).is_file():
            raise BundleError(f"{bundle_dir} is not a model bundle: {name} is missing")
    sha256 = bundle_sha256(bundle_dir)
    if expected_sha256 and sha256 != expected_sha256:
        raise BundleError(
            f"bundle {bundle_dir} has sha256 {sha256}, but {expected_sha256} was registered: "
            "refusing to package a bundle that is not the registered one"
        )
    members = {name: (bundle_dir / name).read_bytes() for name in (BUNDLE_FILE, ESTIMATOR_FILE)}
    from churn.image import ImageError, check_serving_requirements

    try:  # e.g. lightgbm inside an AutoML ensemble: our image must hold it, at the trained version
        check_serving_requirements(json.loads(members[BUNDLE_FILE]).get("info", {}).get("serving_requirements") or {})
    except ImageError as error:
        raise BundleError(f"bundle {bundle_dir} cannot be served by our image: {error}") from None
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with (
        open(output, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(members):
            _add(tar, name, members[name])
    info = json.loads(members[BUNDLE_FILE]).get("info", {})
    return {
        "path": str(output),
        "bundle_sha256": sha256,
        "members": sorted(members),
        "library_versions": info.get("library_versions", {}),
        "info": info,
    }


def package_and_upload(
    bundle_uri: str,
    destination_uri: str,
    region: str,
    expected_sha256: str | None = None,
    profile: str | None = None,
    bundle_copy_uri: str | None = None,
) -> dict[str, object]:
    """Fetch the bundle, check its sha256, package it and upload model.tar.gz to ``destination_uri``.

    With ``bundle_copy_uri`` the bundle's files are also uploaded there as a directory (what
    registry readers such as batch inference load).
    """
    workdir = tempfile.mkdtemp(prefix="churn-package-")
    try:
        bundle_dir = fetch_bundle(bundle_uri, workdir, region, profile)
        built = build_model_tarball(bundle_dir, Path(workdir) / "model.tar.gz", expected_sha256)
        s3.upload_file(built["path"], destination_uri, region, profile)
        uploaded = [destination_uri]
        if bundle_copy_uri:
            for name in (BUNDLE_FILE, ESTIMATOR_FILE):
                uploaded.append(s3.upload_file(bundle_dir / name, s3.join(bundle_copy_uri, name), region, profile))
        return {
            "model_data_url": destination_uri,
            "bundle_sha256": built["bundle_sha256"],
            "members": built["members"],
            "library_versions": built["library_versions"],
            "info": built["info"],
            "bundle_uri": bundle_copy_uri,
            "uploaded": uploaded,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def serving_containers(
    info: dict[str, object],
    image_uri: str,
    model_data_url: str,
    bundle_sha256: str,
    extra_environment: dict[str, str] | None = None,
) -> list[dict[str, object]]:
    """The containers, in order, that serve a bundle packaged at ``model_data_url``.

    A bundle whose estimator runs in the process is served by our container alone. An
    Autopilot bundle (``info["autopilot"]["inference_containers"]``: the best candidate's
    containers, asked for probabilities) is a serial inference pipeline: our container
    encoding the request, the candidate's containers, our container formatting the answer
    (``churn.serving.inference_pipeline``). Both ends use the same archive and image, and
    both verify the bundle against ``bundle_sha256`` before loading it.
    """
    from churn.serving.inference_pipeline import ENCODE, RESPOND, ROLE_ENV

    if not bundle_sha256:
        raise BundleError("the bundle's sha256 is needed: our container refuses to serve an unverified bundle")

    def ours(role: str | None = None, **environment: str) -> dict[str, object]:
        environment = {
            **(extra_environment or {}),
            **environment,
            SHA_ENV: bundle_sha256,
            **({ROLE_ENV: role} if role else {}),
        }
        return {"Image": image_uri, "ModelDataUrl": model_data_url, "Environment": environment}

    autopilot = info.get("autopilot")
    candidate = (autopilot.get("inference_containers") if isinstance(autopilot, dict) else None) or []
    if not candidate:
        return [ours()]
    containers = [ours(ENCODE)]
    for container in candidate:
        if not container.get("Image"):
            raise BundleError(f"the bundle's AutoML inference container {container} names no Image")
        containers.append(
            {
                k: v
                for k, v in (
                    ("Image", container["Image"]),
                    ("ModelDataUrl", container.get("ModelDataUrl")),
                    ("Environment", dict(container.get("Environment") or {})),
                )
                if v
            }
        )
    containers.append(ours(RESPOND))
    if len(containers) > MAX_CONTAINERS:
        raise BundleError(f"{len(containers)} serving containers; SageMaker allows {MAX_CONTAINERS} per model")
    return containers


def extract_model_tarball(data: bytes, directory: str | os.PathLike) -> Path:
    """Unpack a model.tar.gz (as the serving container does) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(directory, filter="data")
    return directory
