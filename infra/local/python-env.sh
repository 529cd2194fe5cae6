#!/usr/bin/env bash
# Create (once) the Python virtualenv the tests use for outside clients: pika (an AMQP
# producer, as a user's code would be) and moto's server (a local AWS API for the
# EC2 Auto Scaling, CloudWatch, SSM... tests). Prints the venv's path.
#
#   VENV=$(infra/local/python-env.sh)
#   "$VENV/bin/python" -c 'import pika'
#
# Environment: SCALE0_VENV (default: <repo>/.venv).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${SCALE0_VENV:-$here/.venv}
stamp=$venv/.scale0-ready-v1
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'pika>=1.3,<2' 'moto[server]>=5,<6' >&2
  touch "$stamp"
fi
echo "$venv"
