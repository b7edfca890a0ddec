"""Why an NCCL run failed, from its failure lines: the likely part and what to do about it.

The first failure line with a known cause names the cause (NCCL prints the root cause as its first
WARN; `Test NCCL failure ... 'unhandled system error'` only says that something failed). Each cause is
data: a pattern over the line, the part it points at (filled from the pattern's groups and the line's
host) and a technician's action. Survivable NCCL WARN lines are listed in
clusterkit.parsers.nccl_tests.SURVIVABLE_WARNS and never reach this table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterkit.parsers.nccl_tests import NcclRun, line_host, survivable_warn
from clusterkit.results import Finding

# ibv_wc_status values (libibverbs verbs.h) that NCCL prints as 'error N' / 'status=N'.
IBV_WC_STATUS = {
    1: "local length error", 2: "local QP operation error", 4: "local protection error", 5: "work request flushed",
    8: "local access error", 9: "remote invalid request", 10: "remote access error", 11: "remote operation error",
    12: "transport retry counter exceeded", 13: "RNR retry counter exceeded", 16: "remote aborted",
    19: "fatal error", 20: "response timeout", 21: "general error",
}

ACTION_FABRIC_MANAGER = (
    "CUDA could not initialise. On NVSwitch systems (HGX/DGX A100/H100) this is most often "
    "nvidia-fabricmanager not running or not matching the driver version: `systemctl status "
    "nvidia-fabricmanager`, start it (its version must equal the driver's), then rerun. "
    "Otherwise check `nvidia-smi -q` for a GPU in error and dmesg for Xid messages.")
ACTION_FAILED = (
    "The test aborted: read the failure lines in the evidence. Typical causes: a GPU in error (Xid in dmesg), "
    "a NIC down (ibstat), NCCL/driver/CUDA version mismatch between nodes, or the launcher (mpirun/srun) "
    "losing a rank. Rerun with NCCL_DEBUG=INFO for the failing step.")
_IB_PATH = ("`ibstat`/`mlxlink -d {hca}` for its state, speed and errors, its port counters (symbol errors, link "
            "downed), then the cable/optic and the switch port; on RoCE also PFC/ECN and NCCL_IB_GID_INDEX")


@dataclass(frozen=True)
class Cause:
    pattern: re.Pattern[str]
    what: str           # the likely cause in words; {group} fields from the pattern
    part: str           # the component: '{host}' plus the pattern's groups
    action: str
    specific: bool = True   # False: says only that something failed; a later, specific line is preferred


def _ib_completion(status: int) -> tuple[str, str]:
    """(cause, action) for an IB work-completion error by its status."""
    name = IBV_WC_STATUS.get(status, f"status {status}")
    if status == 4:
        return (f"an RDMA completion failed with {name}: the HCA could not access the registered buffer, "
                "typically GPUDirect RDMA (peer memory) trouble",
                "On {host}: check GPUDirect RDMA: `lsmod | grep -E 'nvidia_peermem|nv_peer_mem'` (load it), the "
                "IOMMU/ACS settings on the GPU-NIC PCIe switches, and that driver, MOFED and NCCL versions match on "
                "every node; rerun with NCCL_NET_GDR_LEVEL=LOC to confirm (GPUDirect off). Drain {host} if only it "
                "shows this.")
    if status in (12, 13, 20):
        return (f"an RDMA completion failed with {name}: the peer {{peer}} stopped answering on this path",
                "Check {hca_or_net} on {host} and the path to {peer}: " + _IB_PATH + ". Then look at the peer's own "
                "log: a rank that died also stops answering.")
    return (f"an RDMA completion failed with {name}",
            "Check {hca_or_net} on {host} and the path to {peer}: " + _IB_PATH + "; the peer's log for its own "
            "first error.")


CAUSES: tuple[Cause, ...] = (
    Cause(re.compile(r"Got completion from peer (?P<peer>[^\s<]+)(?:<\d+>)? with (?:error |status=)(?P<status>\d+)"
                     r"(?:.*?\bhca (?P<hca>[\w.-]+))?"),
          "{ib_cause}", "{hca_or_net}", "{ib_action}"),
    Cause(re.compile(r"(?P<hca>[\w.-]+):(?P<port>\d+) async fatal event on QP[^:]*:\s*(?P<event>.+)$"),
          "the HCA raised a fatal queue-pair event ({event})", "{hca} port {port}",
          "Check {parts} on {host}: `ibstat`, `mlxlink -d <hca>`, mlx5_core errors in dmesg; firmware and MOFED "
          "versions equal on both nodes, and NCCL_IB_* settings (QPs per connection, GID index) valid for this "
          "fabric. If one HCA repeats it alone, reset it or replace it."),
    Cause(re.compile(r"system not yet initialized"),
          "CUDA could not initialise ('system not yet initialized'): likely nvidia-fabricmanager is not running",
          "GPUs (CUDA init, nvidia-fabricmanager)", ACTION_FABRIC_MANAGER),
    Cause(re.compile(r"busy or unavailable"),
          "CUDA could not use a GPU ('busy or unavailable'): a GPU in Exclusive Process compute mode already "
          "held by another process",
          "GPUs (compute mode)",
          "On {host}: `nvidia-smi -q -d COMPUTE` shows the compute mode; set it back with `nvidia-smi -c DEFAULT` "
          "(root), stop any other process on the GPUs (`nvidia-smi`), and make the launcher bind one rank per GPU "
          "(Slurm --gpus-per-task=1 / CUDA_VISIBLE_DEVICES), then rerun."),
    Cause(re.compile(r"Failed to open libnvidia-ml\.so"),
          "NCCL could not load NVML (libnvidia-ml.so.1)", "NVIDIA driver libraries (libnvidia-ml.so.1)",
          "On {host}: install the NVIDIA driver's user-space libraries matching the kernel module (`ldconfig -p | "
          "grep libnvidia-ml`), or in a container run with the NVIDIA container runtime, which mounts them; "
          "then rerun."),
    Cause(re.compile(r"network (?P<net>.+?) not found"),
          "NCCL_NET asks for the network '{net}' but its plugin is not loaded", "NCCL network plugin ({net})",
          "Load the plugin that provides '{net}' (aws-ofi-nccl: libnccl-net-ofi.so on LD_LIBRARY_PATH, or the site's "
          "NCCL module/uenv), or unset NCCL_NET/NCCL_NET_PLUGIN to use NCCL's own transports; then rerun."),
    Cause(re.compile(r"family \d+ is neither AF_INET"),
          "NCCL's bootstrap received a malformed peer address: mixed NCCL versions or a broken bootstrap exchange",
          "NCCL bootstrap network",
          "Make every node run the same NCCL library and nccl-tests build (`NCCL version` lines, LD_LIBRARY_PATH), "
          "set NCCL_SOCKET_IFNAME to an interface every node shares, and rerun with NCCL_DEBUG=INFO."),
    Cause(re.compile(r"socketFinalizeAccept: wrong type"),
          "NCCL's socket handshake got an unexpected connection type: ranks disagree on the protocol",
          "NCCL socket transport",
          "Make every node run the same NCCL version (`NCCL version` lines, LD_LIBRARY_PATH) and set "
          "NCCL_SOCKET_IFNAME to the same network on all nodes; rerun with NCCL_DEBUG_SUBSYS=INIT,NET."),
    Cause(re.compile(r"Connection closed by remote peer|Connection refused|Connection reset by peer"),
          "a peer closed or refused the connection: it died or cannot reach {host}", "network to its peers",
          "Read the peer node's output for its own first error; check that the nodes reach each other on the "
          "interface NCCL uses (NCCL_SOCKET_IFNAME, firewall, MTU), then rerun."),
    Cause(re.compile(r"UCX\s+ERROR.*?(?: on (?P<dev>[\w.-]+) failed| failed on (?P<dev2>[\w.-]+)): "
                     r"(?P<why>[^\n]+?)\s*$"),
          "MPI's UCX transport failed on {dev} ({why}) before NCCL started", "{dev} (UCX)",
          "{dev} is not usable on every node (SR-IOV pods can get different VF names): set UCX_NET_DEVICES to "
          "devices every node has, or let MPI bootstrap over TCP (`--mca pml ob1 --mca btl tcp,self`); NCCL picks "
          "its own HCAs (NCCL_IB_HCA)."),
    Cause(re.compile(r"illegal memory access"),
          "a GPU kernel faulted ('an illegal memory access was encountered')", "GPUs",
          "Check dmesg on {host} for Xid 13/31/43 at that time; rerun the stock test (device-API modes such as -D "
          "need every rank in one NVLink domain); if it repeats on one GPU, run `dcgmi diag -r 3` and RMA it."),
    Cause(re.compile(r"'unknown error'"),
          "CUDA reported 'unknown error': a GPU or the driver is in a bad state", "GPUs",
          "On {host}: dmesg for Xid (79 fallen off the bus, 119/120 GSP errors), `nvidia-smi -q` for a GPU in error; "
          "reset the GPU or reboot, and RMA it if it repeats."),
    Cause(re.compile(r"out of memory", re.I),
          "a GPU ran out of memory", "GPU memory",
          "Stop other processes on the GPUs (`nvidia-smi`) or lower the largest size (-e); rerun."),
    Cause(re.compile(r"invalid usage"),
          "NCCL rejected its configuration ('invalid usage')", "NCCL configuration",
          "Rerun with NCCL_DEBUG=WARN: the WARN line gives the reason. Most often NCCL_NET names a network whose "
          "plugin is not loaded, or the ranks were launched inconsistently.", specific=False),
    Cause(re.compile(r"mpirun noticed that process rank (?P<rank>\d+).*? on node (?P<node>\S+) exited on signal "
                     r"(?P<sig>\d+)"),
          "rank {rank} on {host} was killed by signal {sig}", "rank {rank}",
          "Read {host}'s output for its last lines (a crash, an OOM kill in dmesg, an Xid) and rerun.",
          specific=False),
    Cause(re.compile(r"unhandled cuda error"),
          "a CUDA call inside NCCL failed ('unhandled cuda error')", "GPUs",
          "Rerun with NCCL_DEBUG=WARN: the NCCL WARN line names the CUDA call and its error. Check dmesg on {host} "
          "for Xid messages and that the driver supports the CUDA version NCCL was built with.", specific=False),
    Cause(re.compile(r"unhandled system error|remote process exited|internal error"),
          "NCCL failed in a system call or lost a peer (the NCCL WARN before it names the call)", "NCCL transport",
          "Rerun with NCCL_DEBUG=INFO: the first NCCL WARN names the failing call (socket, IB verbs, shared "
          "memory, a library). Check /dev/shm size in containers, NCCL_SOCKET_IFNAME, the IB devices (ibstat) and "
          "that every node runs the same NCCL version.", specific=False),
)
_GENERIC = Cause(re.compile(""), "the test failed", "", ACTION_FAILED, specific=False)
# nccl-tests prints ' .. host pid N: Test failure file:line' when it exits on wrong data: no cause of its own.
_BARE_TEST_FAILURE = re.compile(r"^(?:\.\.\s+\S+ pid \d+: )?Test failure(?:\s+[\w./-]+:\d+)?\s*$")


def _fields(cause: Cause, m: re.Match[str], line: str) -> dict[str, str]:
    f = {k: v for k, v in m.groupdict().items() if v is not None}
    if "dev2" in f:
        f["dev"] = f.pop("dev2")
    host = f.get("node") or line_host(line)
    f["host"] = host or "this node"
    if host:
        f["named_host"] = host
    if "status" in f:
        peer = f.get("peer", "?")
        iface = peer.split("%", 1)[1] if "%" in peer else None
        f["hca_or_net"] = f.get("hca") or (f"NET/IB over {iface}" if iface else "NET/IB")
        f.setdefault("hca", "<hca>")
        f["ib_cause"], f["ib_action"] = _ib_completion(int(f["status"]))
    return f


def _fill(template: str, fields: dict[str, str]) -> str:
    out = template
    for _ in range(2):  # the IB texts carry their own {fields}
        out = re.sub(r"\{(\w+)\}", lambda m: fields.get(m[1], m[0]), out)
    return out


def explain(run: NcclRun) -> tuple[str, Cause, dict[str, str]]:
    """The failure line that names the cause, the cause, and its fields (host, part, ...)."""
    first: tuple[str, Cause, dict[str, str]] | None = None
    for line in run.failures:
        for cause in CAUSES:
            m = cause.pattern.search(line)
            if m:
                hit = (line, cause, _fields(cause, m, line))
                if cause.specific:
                    return hit
                first = first or hit
                break
    if first:
        return first
    line = run.failures[0]
    host = line_host(line)
    return line, _GENERIC, {"host": host or "this node", **({"named_host": host} if host else {})}


def consequential(run: NcclRun) -> bool:
    """True when the only failure lines are nccl-tests' exit after wrong data (reported as validation)."""
    return bool(run.failures) and run.has_trailer and (run.wrong_total > 0 or run.oob_failed) and \
        all(_BARE_TEST_FAILURE.search(f.strip()) for f in run.failures)


def failing_hosts(run: NcclRun) -> list[str]:
    """Hosts named by the failure lines, in order of appearance."""
    hosts: list[str] = []
    for line in run.failures:
        h = line_host(line)
        if h and h not in hosts:
            hosts.append(h)
    return hosts


def failure_finding(run: NcclRun, default_host: str, component: str, label: str) -> Finding:
    """NCCL_TEST_FAILED for a run that ran and failed: the first line with a known cause, the part, the action."""
    line, cause, fields = explain(run)
    by_host: dict[str, list[str]] = {}   # the same cause on several parts (each HCA of a node, each host)
    for other in run.failures:
        m = cause.pattern.search(other) if cause is not _GENERIC else None
        if m:
            f = _fields(cause, m, other)
            parts = by_host.setdefault(f.get("named_host") or default_host, [])
            p = _fill(cause.part, f)
            if p and p not in parts:
                parts.append(p)
    host = fields.get("named_host") or default_host
    fields["parts"] = ", ".join(by_host.get(host) or [_fill(cause.part, fields)])
    if cause is _GENERIC:
        part = component if "named_host" not in fields else f"{host} ({component.split(' ', 1)[-1]})"
    else:
        part = "; ".join(f"{h} {', '.join(ps)}".strip() for h, ps in by_host.items()) or f"{host} {fields['parts']}"
    hosts = failing_hosts(run)
    where = f" (failure lines from {', '.join(hosts[:6])}{' ...' if len(hosts) > 6 else ''})" if len(hosts) > 1 else ""
    when = f"aborted after {len(run.rows)} size(s)" if run.rows else "failed before any result"
    what = "" if cause is _GENERIC else " -> " + _fill(cause.what, fields)
    action = _fill(cause.action, fields)
    if (run.nccl_version or "").startswith("1."):
        action = (f"This build uses NCCL {run.nccl_version}, which current drivers and GPUs do not support: rebuild "
                  "nccl-tests against NCCL 2 and rerun. " + action)
    return Finding("NCCL_TEST_FAILED", "fail", part[:300], f"{label} {when}: {line[:200]}{what}{where}",
                   action=action, evidence="\n".join(run.failures[:8]))


def warning_findings(run: NcclRun, default_host: str) -> list[Finding]:
    """NCCL_WARN_NONFATAL: one finding per kind of survivable NCCL WARN."""
    out: list[Finding] = []
    seen: set[str] = set()
    for line in run.warnings:
        w = survivable_warn(line)
        if w is None or w.meaning in seen:
            continue
        seen.add(w.meaning)
        same = [x for x in run.warnings if survivable_warn(x) is w]
        host = line_host(line) or default_host
        out.append(Finding("NCCL_WARN_NONFATAL", "warn", f"{host} NCCL", f"NCCL warned and carried on: "
                           f"{line[:200]} -> {w.meaning}", action=w.action, evidence="\n".join(same[:5])))
    return out


ACTION_STOPPED = ("The test hung or was killed (a sweep script's timeout, the scheduler, a lost rank): rerun it alone "
                  "with NCCL_DEBUG=INFO and the launcher's timeout raised, keep its whole output (stdout and stderr), "
                  "and look for a hung process or an Xid in dmesg on its nodes at that time.")


def stopped_finding(parts: list[NcclRun], i: int, component: str) -> Finding | None:
    """NCCL_RUN_INCOMPLETE (fail) for test `i` of a log of several that stopped without a word: it printed
    its header and no row (or stopped mid-sweep) with no summary, no `concluded` line and no failure line,
    while another test of the same log completed before it or started after it. A test that hangs or is
    killed is a failed test; the log around it shows it is not a paste cut short."""
    p = parts[i]
    if p.failures or p.completed:
        return None
    later = i + 1 < len(parts)
    if p.rows:
        if not later or p.sweep_complete is not False:
            return None  # the last test's cut rows are judged as before (a paste may end anywhere)
        what = (f"stopped after {len(p.rows)} size(s) (largest {(p.max_size_bytes or 0) / 2**20:g} MiB of maxBytes "
                f"{p.params.get('maxBytes', 0) / 2**20:g} MiB)")
    elif later or any(q.completed for q in parts[:i]):
        what = "printed its header and no result row"
    else:
        return None
    where = ("the next test started after it" if later else
             f"{', '.join(q.label for q in parts[:i] if q.completed)} completed before it")
    return Finding("NCCL_RUN_INCOMPLETE", "fail", component,
                   f"{p.label} {what}, with no summary, no 'Collective test concluded' line and no failure line, "
                   f"while {where}: the test hung or was killed", action=ACTION_STOPPED)
