#!/usr/bin/env bash
# Install what the test suite needs on a fresh Debian/Ubuntu machine, then run all of it.
#   ./scripts/test.sh [pytest args]
# System packages: every list in scripts/apt-packages.d/ (sshd, prometheus, chromium, slurm, ...).
# Python packages: a virtual environment in .venv with clusterkit and its test extra.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  mapfile -t pkgs < <(cat scripts/apt-packages.d/*.txt | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' | sort -u)
  $SUDO apt-get update -q
  # While installing, a policy-rc.d keeps package scripts from starting services
  # (sshd, prometheus, slurm): the tests start their own on ephemeral ports.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${pkgs[@]}"
  [ -z "$own_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip's chatter goes to a log; it is shown only when the install fails.
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -m pip install -q -e '.[test]' > .venv/pip-install.log 2>&1; then
  tail -n 60 .venv/pip-install.log >&2
  echo "scripts/test.sh: pip install failed (full log: .venv/pip-install.log)" >&2
  exit 1
fi
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
