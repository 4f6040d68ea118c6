#!/bin/sh
# SageMaker starts an endpoint's container as `docker run IMAGE serve` (churn.serving.container);
# any other command runs as given (ZenML's step jobs replace the entrypoint altogether).
set -e
if [ "${1:-serve}" = "serve" ]; then
    [ "$#" -gt 0 ] && shift
    exec /opt/venv/bin/python -m churn.serving.container serve "$@"
fi
exec "$@"
