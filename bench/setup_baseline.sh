#!/usr/bin/env bash
# The synth benchmark's baseline environment: cdktf with the prebuilt Google provider bindings
# (cdktf-cdktf-provider-google), the way most cdktf users write BigQuery resources. It lives in
# bench/.venv-baseline only: the project's own venv never gets the prebuilt bindings.
#
#   bash bench/setup_baseline.sh          # idempotent; re-run after changing the pins below
#
# The pins match the project venv's cdktf / jsii / constructs, so both sides of the benchmark run the
# same cdktf and the same jsii kernel; 16.x of the bindings is the line built for cdktf 0.21.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${HERE}/.venv-baseline"
PYTHON="${PYTHON:-python3}"
PINS=(
    "cdktf==0.21.0"
    "constructs==10.8.1"
    "jsii==1.142.0"
    "cdktf-cdktf-provider-google==16.12.1"
)
STAMP="${VENV}/.installed-$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-12)"

if [[ -f "${STAMP}" ]]; then
    echo "baseline venv up to date: ${VENV}"
    exit 0
fi
echo "==> baseline venv ${VENV} (${PINS[*]})"
test -x "${VENV}/bin/python" || "${PYTHON}" -m venv "${VENV}"
"${VENV}/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
"${VENV}/bin/python" -m pip install -q --disable-pip-version-check "${PINS[@]}"
rm -f "${VENV}"/.installed-*
touch "${STAMP}"
JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 "${VENV}/bin/python" -c "import cdktf_cdktf_provider_google, importlib.metadata as m; print('installed', m.version('cdktf-cdktf-provider-google'))"
