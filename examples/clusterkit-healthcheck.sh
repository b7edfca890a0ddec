#!/bin/bash
# NHC-style wrapper: clusterkit's node-local check as Slurm's HealthCheckProgram, Prolog or Epilog.
# Install on every compute node (e.g. /etc/slurm/clusterkit-healthcheck.sh, root-owned, mode 0755) and
# point slurm.conf at it (docs/slurm.md):
#   HealthCheckProgram=/etc/slurm/clusterkit-healthcheck.sh
#   HealthCheckInterval=300
#   HealthCheckNodeState=ANY,CYCLE
#   Prolog=/etc/slurm/prolog.d/*          (a link to this script named clusterkit-prolog.sh)
#   Epilog=/etc/slurm/epilog.d/*          (a link named clusterkit-epilog.sh)
# The mode comes from $SLURM_SCRIPT_CONTEXT (prolog_slurmd / epilog_slurmd); without it, a health check.
#
# Exit status is clusterkit's: 0 healthy; 1 a check failed on this node (a prolog then makes Slurm
# drain the node and requeue the job; the health check drains it itself with --drain); 2 a usage or
# configuration error. The node drains itself with reason "clusterkit: CODE ...", and only a drain
# with that prefix is ever resumed once the node passes again.
set -u

CLUSTERKIT=${CLUSTERKIT:-/opt/clusterkit/bin/clusterkit}    # a venv on local disk or a shared file system
INVENTORY=${CLUSTERKIT_INVENTORY:-/etc/clusterkit/inventory.ini}   # declares this node's GPUs and HCAs
LOG=${CLUSTERKIT_LOG:-/var/log/clusterkit/healthcheck.log}
KEEP=${CLUSTERKIT_KEEP:-/var/lib/clusterkit/last-check}      # the last bundle, for `clusterkit analyze`
LOCK=/run/clusterkit-healthcheck.lock

# slurmd gives a health check no environment: say where the tools are.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C

case "${SLURM_SCRIPT_CONTEXT:-}" in
  prolog_slurmd) mode=prolog; budget=15 ;;    # every job start waits for this: keep it short
  epilog_slurmd) mode=epilog; budget=30 ;;    # after the job: a little more time, same checks
  *)             mode=healthcheck; budget=40 ;;  # slurmd kills a health check after 60 s
esac

mkdir -p "$(dirname "$LOG")" "$KEEP"
inv=()
[ -r "$INVENTORY" ] && inv=(--inventory "$INVENTORY")

# One check at a time per node: a health check may start while a prolog's check still runs.
exec 9>"$LOCK"
if ! flock -w 5 9; then
  echo "$(date -Is) $mode: another clusterkit check is running; skipped" >>"$LOG"
  exit 0
fi

out=$("$CLUSTERKIT" check --local "${inv[@]}" --budget "$budget" --drain --keep-evidence "$KEEP" 2>&1)
rc=$?
printf '%s %s rc=%s\n%s\n' "$(date -Is)" "$mode" "$rc" "$out" >>"$LOG"
# A configuration error (rc 2) must not drain every node through a prolog: log it and let the job run.
if [ "$rc" -eq 2 ] && [ "$mode" != healthcheck ]; then
  logger -t clusterkit "check --local configuration error on $(hostname -s): $out"
  exit 0
fi
exit "$rc"
