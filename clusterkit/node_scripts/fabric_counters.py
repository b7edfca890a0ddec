"""Snapshot of InfiniBand/RoCE port counters and netdev carrier counts from sysfs.

Runs on a node as `python3 - [--root DIR] [--phase before|after]` with this file
on stdin, so it must need nothing but the standard library. Tests import
`read_snapshot(root)` and point it at a fake sysfs tree: one reader for both.
Prints one JSON object (schema below); unreadable files are skipped, never fatal.
"""

from __future__ import annotations

import json
import os
import sys
import time

SCHEMA = "clusterkit.fabric.counters/1"
_PORT_ATTRS = ("state", "phys_state", "rate", "link_layer")
_DEV_ATTRS = ("fw_ver", "node_guid", "hca_type", "board_id")
_NET_ATTRS = ("carrier_changes", "carrier_up_count", "carrier_down_count", "operstate", "speed", "carrier", "address")


def _read(path: str) -> str | None:
    try:
        with open(path, "r", errors="replace") as f:
            return f.read().strip()
    except OSError:  # EINVAL for speed of a down link, EACCES for some hw counters
        return None


def _number(s: str | None) -> int | str | None:
    if s is None:
        return None
    try:
        return int(s, 0)
    except ValueError:
        return s


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _counters(directory: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in _listdir(directory):
        v = _number(_read(os.path.join(directory, name)))
        if isinstance(v, int):
            out[name] = v
    return out


def read_snapshot(root: str = "/", phase: str | None = None) -> dict:
    """Read `<root>/sys/class/infiniband` and `<root>/sys/class/net` into a dict."""
    ib_root = os.path.join(root, "sys/class/infiniband")
    net_root = os.path.join(root, "sys/class/net")
    ib: dict[str, dict] = {}
    for dev in _listdir(ib_root):
        ddir = os.path.join(ib_root, dev)
        info = {a: _read(os.path.join(ddir, a)) for a in _DEV_ATTRS}
        netdevs = _listdir(os.path.join(ddir, "device", "net"))
        for port in _listdir(os.path.join(ddir, "ports")):
            pdir = os.path.join(ddir, "ports", port)
            entry: dict = {"device": dev, "port": _number(port)}
            entry.update({a: _read(os.path.join(pdir, a)) for a in _PORT_ATTRS})
            entry.update(info)
            entry["netdevs"] = netdevs
            entry["counters"] = _counters(os.path.join(pdir, "counters"))
            entry["hw_counters"] = _counters(os.path.join(pdir, "hw_counters"))
            ib[f"{dev}/{port}"] = entry
    net: dict[str, dict] = {}
    for ifname in _listdir(net_root):
        if ifname == "lo":
            continue
        ndir = os.path.join(net_root, ifname)
        net[ifname] = {a: _number(_read(os.path.join(ndir, a))) for a in _NET_ATTRS}
    uptime = _read(os.path.join(root, "proc/uptime"))
    return {
        "schema": SCHEMA,
        "phase": phase,
        "taken_at": time.time(),
        "uptime_s": float(uptime.split()[0]) if uptime else None,
        "ib": ib,
        "net": net,
    }


def main(argv: list[str]) -> int:
    root, phase = "/", None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--root" and args:
            root = args.pop(0)
        elif a == "--phase" and args:
            phase = args.pop(0)
        else:
            sys.stderr.write(f"usage: fabric_counters [--root DIR] [--phase before|after] (got {a!r})\n")
            return 2
    json.dump(read_snapshot(root, phase), sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
