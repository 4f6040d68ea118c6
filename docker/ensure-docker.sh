#!/usr/bin/env bash
# Make a Docker daemon and the local base image available for the container tests (make test, CI).
#
# 1. Installs Debian's docker.io and debootstrap when missing (needs root and apt).
# 2. Starts dockerd in the background when `docker info` fails, and leaves a note saying so
#    (pid and log in $CHURN_DOCKERD_DIR, default /tmp/churn-dockerd): stop it with
#    `kill "$(cat /tmp/churn-dockerd/dockerd.pid)"` when you are done.
# 3. Builds the base image $CHURN_BASE_IMAGE (default local/python:3.11-slim) from Debian bookworm's
#    own packages (python3.11 + venv) with debootstrap when that tag does not exist yet: Docker Hub
#    (python:3.11-slim) is not reachable from CI. Skipped when the tag exists.
# Exits non-zero with a message when something cannot be provided; the container tests then fail
# and say why.
set -euo pipefail
BASE_IMAGE="${CHURN_BASE_IMAGE:-local/python:3.11-slim}"
STATE="${CHURN_DOCKERD_DIR:-/tmp/churn-dockerd}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    echo "ensure-docker: installing docker.io and debootstrap (apt)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null \
        || { echo "ensure-docker: cannot install docker.io/debootstrap (not root, or apt failed)" >&2; exit 1; }
fi

if ! docker info >/dev/null 2>&1; then
    mkdir -p "$STATE"
    echo "ensure-docker: no Docker daemon answers; starting dockerd (log $STATE/dockerd.log)"
    as_root sh -c "nohup dockerd >'$STATE/dockerd.log' 2>&1 & echo \$! >'$STATE/dockerd.pid'" \
        || { echo "ensure-docker: cannot start dockerd (needs root)" >&2; exit 1; }
    echo "dockerd started by docker/ensure-docker.sh at $(date -u +%FT%TZ), pid $(cat "$STATE/dockerd.pid"); stop it with: kill $(cat "$STATE/dockerd.pid")" >"$STATE/NOTE"
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "ensure-docker: dockerd did not come up; see $STATE/dockerd.log" >&2; tail -5 "$STATE/dockerd.log" >&2; exit 1; }
    cat "$STATE/NOTE"
fi

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    mirror="$(grep -h -m1 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true)"
    [ -n "$mirror" ] || mirror="$(grep -h -m1 -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}' || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
    root="$(mktemp -d /tmp/churn-base.XXXXXX)"
    trap 'as_root rm -rf "$root"' EXIT
    echo "ensure-docker: building $BASE_IMAGE with debootstrap from $mirror (about a minute)"
    as_root debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror" >"$root.log" 2>&1 \
        || { echo "ensure-docker: debootstrap failed; see $root.log" >&2; tail -5 "$root.log" >&2; exit 1; }
    as_root rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
    as_root tar -C "$root" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
    rm -f "$root.log"
    echo "ensure-docker: $BASE_IMAGE built"
fi
