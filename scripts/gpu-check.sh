#!/usr/bin/env bash
# GPU validation in one prepared run, from a checkout, on a machine with NVIDIA GPUs and no network.
#   scripts/gpu-check.sh OUT_DIR [WHEEL_DIR] [--budget SECONDS]
# OUT_DIR gets every output, summary.json and RESULTS-gpu.md. WHEEL_DIR (or $CLUSTERKIT_WHEELS) holds
# wheels for what the machine lacks (nvidia-ml-py, pytest and its few dependencies; docs/gpu.md says how
# to fill it with `pip download`); they are installed into a temporary directory, never into the system.
# Without a GPU every GPU step says it was skipped and why, and the script exits 0.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/gpu-check.sh OUT_DIR [WHEEL_DIR] [--budget SECONDS]}
shift
wheels=${CLUSTERKIT_WHEELS:-}
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then wheels=$1; shift; fi
PY=${PYTHON:-python3}
if [ -n "$wheels" ] && compgen -G "$wheels/*.whl" >/dev/null; then
  site=$(mktemp -d "${TMPDIR:-/tmp}/clusterkit-gpu-site.XXXXXX")
  trap 'rm -rf "$site"' EXIT
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check --target "$site" "$wheels"/*.whl; then
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu-check: could not install the wheels in $wheels; going on with what the machine has" >&2
  fi
fi
# The checkout itself, not an installed clusterkit.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
"$PY" -m clusterkit.gpu_check "$out" "$@"
