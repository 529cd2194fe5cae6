#!/usr/bin/env bash
# Create (once) the Python virtualenv the tests use for outside tools: pika (an AMQP
# producer, as a user's code would be), moto's server (a local AWS API for the EC2
# Auto Scaling, CloudWatch, SSM... tests) and checkov (the Terraform checks of
# terraform/). Prints the venv's path.
#
#   VENV=$(infra/local/python-env.sh)
#   "$VENV/bin/python" -c 'import pika'
#   "$VENV/bin/checkov" --version
#
# checkov pins its own boto3, older than the one moto wants, so it lives in a venv of
# its own inside this one ($VENV/checkov), linked as $VENV/bin/checkov.
#
# Environment: SCALE0_VENV (default: <repo>/.venv).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${SCALE0_VENV:-$here/.venv}
pip_install() { "$1/bin/pip" install --quiet --disable-pip-version-check "${@:2}" >&2; }
stamp=$venv/.scale0-ready-v1
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv" >&2
  pip_install "$venv" 'pika>=1.3,<2' 'moto[server]>=5,<6'
  touch "$stamp"
fi
checkov_stamp=$venv/.scale0-checkov-ready-v1
if [ ! -f "$checkov_stamp" ]; then
  python3 -m venv "$venv/checkov" >&2
  pip_install "$venv/checkov" 'checkov>=3.2,<4'
  ln -sf "$venv/checkov/bin/checkov" "$venv/bin/checkov"
  touch "$checkov_stamp"
fi
echo "$venv"
