"""The churn-mlops image (``docker/Dockerfile``): its content tag, build and push to ECR.

One image serves every SageMaker endpoint (``docker run IMAGE serve``), the AutoML serial
pipeline's encode and respond containers, and runs the ZenML steps on the SageMaker
orchestrator. Its tag is derived from what goes into it:

    <sha256(requirements.lock)[:12]>-<sha256(Dockerfile, entrypoint and the code)[:12]>

so the same lock file and code always give the same tag, and a model package registered from
a working tree names the image ``python run.py image build --push`` pushes from it. Inside
the image ``CHURN_IMAGE_TAG`` holds the tag it was built with (a step running in it names
its own image).

The build context is assembled in a temporary directory: the Dockerfile, requirements.lock,
the code packages, and the machine's CA bundle when pip needs one to reach the index (from
PIP_CERT / SSL_CERT_FILE / REQUESTS_CA_BUNDLE or pip's ``cert`` setting; never part of the
repository). The build uses the host network, so it reaches the same index as this machine.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = "docker/Dockerfile"
LOCK = "requirements.lock"
# what the image holds besides the dependencies (copied to /opt/program)
CODE = ("churn", "steps", "pipelines", "materializers", "stacks", "cli", "run.py", "pyproject.toml")
IMAGE_FILES = (DOCKERFILE, "docker/entrypoint.sh")
DEFAULT_BASE_IMAGE = "python:3.11-slim"
DEFAULT_REPOSITORY = "churn-mlops"
LOCAL_NAME = "churn-mlops"
TAG_ENV = "CHURN_IMAGE_TAG"
_TAGGED = re.compile(r"(:[A-Za-z0-9_.\-]{1,128}|@sha256:[a-f0-9]{64})$")
_SKIP = ("__pycache__", ".pyc", ".pyo")


class ImageError(RuntimeError):
    """The image cannot be built, named or pushed (the message says why)."""


def _say(message: str) -> None:
    print(message, flush=True)


def _files(root: Path, entries: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for entry in entries:
        path = root / entry
        if path.is_file():
            out.append(path)
        elif path.is_dir():
            out.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part in _SKIP or part.endswith(_SKIP) for part in p.relative_to(root).parts)
            )
    return out


def _digest(root: Path, files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def content_tag(root: Path = REPO) -> str:
    """The tag for the image built from ``root``: lock-file hash, then code hash."""
    if not (root / LOCK).is_file() or not (root / DOCKERFILE).is_file():
        raise ImageError(f"{root} holds no {LOCK} and {DOCKERFILE}: the image tag is derived from them")
    lock = hashlib.sha256((root / LOCK).read_bytes()).hexdigest()
    code = _digest(root, _files(root, IMAGE_FILES + CODE))
    return f"{lock[:12]}-{code[:12]}"


def current_tag() -> str:
    """The tag of the image this code belongs to: the running image's own, else the working tree's."""
    return os.environ.get(TAG_ENV) or content_tag()


def is_tagged(image: str) -> bool:
    return bool(_TAGGED.search(image.rsplit("/", 1)[-1]))


def ecr_repository(account: str, region: str, repository: str = DEFAULT_REPOSITORY) -> str:
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{domain}/{repository}"


def resolve_image_uri(image_uri: str | None, region: str, profile: str | None = None) -> str:
    """The image a model package / endpoint / job uses.

    ``image_uri`` with a tag (or digest): as is. Without one: that repository with
    :func:`current_tag`. None: the stack account's ``churn-mlops`` ECR repository (what
    ``run.py image build --push`` pushes to) with :func:`current_tag`.
    """
    if image_uri and is_tagged(image_uri):
        return image_uri
    if not image_uri:
        from churn.aws.clients import aws_errors, client

        with aws_errors("looking up the account for the default image (set image_uri in the stack config)", ImageError):
            account = client("sts", region, profile).get_caller_identity()["Account"]
        image_uri = ecr_repository(account, region)
    return f"{image_uri}:{current_tag()}"


def locked_versions(root: Path = REPO) -> dict[str, str]:
    """name -> version pinned in requirements.lock (what the image holds); {} without a lock file."""
    path = root / LOCK
    if not path.is_file():
        return {}
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)==([^\s;\\]+)", path.read_text(), flags=re.M)
    return {_normal(name): version for name, version in pins}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_serving_requirements(requirements: dict[str, str], root: Path = REPO) -> None:
    """Raise ImageError when the image (requirements.lock) lacks a library, or version, the bundle needs."""
    locked = locked_versions(root)
    if not locked:
        return
    problems = []
    for name, version in sorted((requirements or {}).items()):
        have = locked.get(_normal(name))
        if have is None:
            problems.append(f"{name}=={version} (not in {LOCK})")
        elif version and str(version) != have:
            problems.append(f"{name}=={version} ({LOCK} has {have})")
    if problems:
        raise ImageError(
            "the bundle needs libraries our image does not hold: "
            + ", ".join(problems)
            + f"; the image is built from {LOCK}: add them there (make lock) and rebuild it"
        )


# -- build ----------------------------------------------------------------------------
def _ca_bundle() -> Path | None:
    """The CA bundle this machine's pip uses to reach its index, if one is configured."""
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if os.environ.get(name) and Path(os.environ[name]).is_file():
            return Path(os.environ[name])
    parser = configparser.ConfigParser()
    parser.read(
        [
            p
            for p in (
                "/etc/pip.conf",
                os.path.expanduser("~/.config/pip/pip.conf"),
                os.path.expanduser("~/.pip/pip.conf"),
            )
            if os.path.isfile(p)
        ]
    )
    cert = parser.get("global", "cert", fallback=None)
    return Path(cert) if cert and Path(cert).is_file() else None


def index_build_args() -> dict[str, str]:
    """The machine's package index settings the build can use (file:// indexes stay outside)."""
    args = {}
    for name in ("PIP_INDEX_URL", "UV_DEFAULT_INDEX"):
        value = os.environ.get(name, "")
        if value and not value.startswith("file:"):
            args[name] = value
    if "UV_DEFAULT_INDEX" not in args and os.environ.get("UV_INDEX_URL", "").startswith("http"):
        args["UV_DEFAULT_INDEX"] = os.environ["UV_INDEX_URL"]
    return args


def build_context(directory: Path, root: Path = REPO) -> Path:
    """Write the build context (Dockerfile, lock, code, CA bundle) into ``directory``."""
    (directory / "docker").mkdir(parents=True, exist_ok=True)
    for name in IMAGE_FILES + (LOCK,):
        shutil.copy2(root / name, directory / name)
    for path in _files(root, CODE):
        target = directory / "code" / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    ca = _ca_bundle()
    (directory / "build-ca.crt").write_bytes(ca.read_bytes() if ca else b"")
    return directory


def _docker(args: list[str], what: str, stream: bool = False, **kwargs) -> subprocess.CompletedProcess:
    if shutil.which("docker") is None:
        raise ImageError(f"{what}: the docker CLI is not installed")
    process = subprocess.run(["docker", *args], text=True, capture_output=not stream, **kwargs)
    if process.returncode != 0:
        detail = (process.stderr or process.stdout or "").strip()[-3000:] if not stream else "see the output above"
        raise ImageError(f"{what} failed (docker {args[0]}, exit {process.returncode}): {detail}")
    return process


def docker_available() -> str | None:
    """None when a Docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed (make test runs docker/ensure-docker.sh to install it)"
    process = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if process.returncode != 0:
        return (
            "no Docker daemon answers (`docker info`: "
            f"{(process.stderr or process.stdout).strip()[-300:]}); run docker/ensure-docker.sh as root"
        )
    return None


def build(
    base_image: str = DEFAULT_BASE_IMAGE,
    name: str = LOCAL_NAME,
    root: Path = REPO,
    quiet: bool = False,
    progress: Callable[[str], None] = _say,
) -> str:
    """Build the image as ``<name>:<content tag>`` (also ``<name>:latest``); return that reference."""
    reason = docker_available()
    if reason:
        raise ImageError(f"cannot build the image: {reason}")
    tag = content_tag(root)
    reference = f"{name}:{tag}"
    args = {"BASE_IMAGE": base_image, "IMAGE_TAG": tag, **index_build_args()}
    with tempfile.TemporaryDirectory(prefix="churn-image-") as context:
        build_context(Path(context), root)
        command = [
            "build",
            "--network",
            "host",
            "-f",
            str(Path(context) / DOCKERFILE),
            "-t",
            reference,
            "-t",
            f"{name}:latest",
        ]
        for key, value in args.items():
            command += ["--build-arg", f"{key}={value}"]
        progress(f"Building {reference} from {base_image}")
        _docker(
            command + (["--quiet"] if quiet else []) + [context],
            f"building {reference}",
            stream=not quiet,
            env={**os.environ, "DOCKER_BUILDKIT": "0"},
        )
    return reference


def push(
    reference: str,
    region: str,
    profile: str | None = None,
    repository_uri: str | None = None,
    progress: Callable[[str], None] = _say,
) -> str:
    """Push a built image to ECR (the repository is created if missing); return the pushed URI."""
    from churn.aws.clients import aws_errors, client

    tag = reference.rsplit(":", 1)[-1]
    if not repository_uri:
        with aws_errors("looking up the account", ImageError):
            account = client("sts", region, profile).get_caller_identity()["Account"]
        repository_uri = ecr_repository(account, region)
    repository_uri = _TAGGED.sub("", repository_uri)
    registry, repository = repository_uri.split("/", 1)
    ecr = client("ecr", region, profile)
    with aws_errors(f"creating ECR repository '{repository}'", ImageError):
        try:
            ecr.describe_repositories(repositoryNames=[repository])
        except ecr.exceptions.RepositoryNotFoundException:
            progress(f"Creating ECR repository {repository}")
            ecr.create_repository(repositoryName=repository, imageScanningConfiguration={"scanOnPush": True})
    with aws_errors("getting an ECR login token", ImageError):
        token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    _docker(
        ["login", "--username", user, "--password-stdin", registry], f"logging Docker into {registry}", input=password
    )
    target = f"{repository_uri}:{tag}"
    _docker(["tag", reference, target], f"tagging {target}")
    progress(f"Pushing {target}")
    _docker(["push", target], f"pushing {target}", stream=True)
    return target
