"""Work spread over fresh Python worker processes (`python -m clusterkit.workers JOB`).

Why not multiprocessing: a forked worker copies whatever locks the parent's
threads (SSH transports, torch, a progress bar) hold at that moment and can hang
for good; spawn/forkserver workers re-run the caller's main script, which an
unguarded script turns into endless failing workers. A fresh interpreter has
neither problem, and its pipe gives us what a Pool hides: when a worker died or
stalled, and which items it never delivered. Those come back missing, for the
caller to redo itself: results never depend on the workers.
"""

from __future__ import annotations

import logging
import os
import pickle
import selectors
import struct
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

_LEN = struct.Struct("!Q")


def _write_frame(out: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LEN.pack(len(data)) + data)
    out.flush()


def _frames(buf: bytearray) -> list[Any]:
    """Complete frames at the start of buf (removed from it)."""
    out = []
    while len(buf) >= _LEN.size:
        (n,) = _LEN.unpack_from(buf)
        if len(buf) < _LEN.size + n:
            break
        out.append(pickle.loads(bytes(buf[_LEN.size:_LEN.size + n])))
        del buf[:_LEN.size + n]
    return out


def run(fn: Callable[[Any, Any], Any], shared: Any, items: list[Any], workers: int, *,
        stall_s: float, command: list[str] | None = None,
        on_result: Callable[[int, Any], None] | None = None) -> dict[int, Any]:
    """fn(shared, item) for every item, spread over `workers` processes.

    fn must be a module-level function (workers import it by name). Returns
    {index: result} for the items delivered; an item whose worker failed, died,
    or sent nothing for stall_s seconds is absent. Never raises for a worker's
    failure and never waits longer than stall_s without progress.
    `on_result(index, result)` is called as each result arrives."""
    command = command or [sys.executable, "-m", "clusterkit.workers"]
    # Workers import what this process imported, from where it did (a checkout, a sys.path entry
    # a script added), not only from what is installed.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([p for p in sys.path if p] + [os.environ.get("PYTHONPATH", "")]))
    done: dict[int, Any] = {}
    slices = [list(range(w, len(items), workers)) for w in range(min(workers, len(items)))]
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="clusterkit-workers-") as tmp:
        sel = selectors.DefaultSelector()
        try:
            for w, idx in enumerate(slices):
                job = os.path.join(tmp, f"job-{w}.pickle")
                with open(job, "wb") as f:
                    pickle.dump((fn, shared, [(i, items[i]) for i in idx]), f, protocol=pickle.HIGHEST_PROTOCOL)
                err = open(os.path.join(tmp, f"stderr-{w}.txt"), "wb")
                p = subprocess.Popen([*command, job], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                     env=env)
                err.close()
                procs.append(p)
                sel.register(p.stdout, selectors.EVENT_READ, (w, bytearray()))  # type: ignore[arg-type]
            last = time.monotonic()
            while sel.get_map():
                events = sel.select(timeout=max(0.0, stall_s - (time.monotonic() - last)))
                if not events:
                    log.warning("analysis workers sent nothing for %.0f s; finishing their part here", stall_s)
                    break
                for key, _ in events:
                    w, buf = key.data
                    chunk = os.read(key.fd, 1 << 20)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    last = time.monotonic()
                    buf.extend(chunk)
                    try:
                        frames = _frames(buf)
                    except Exception as e:  # garbage on a worker's stdout: stop trusting that worker
                        log.warning("analysis worker %d sent unreadable output (%s)", w, e)
                        sel.unregister(key.fileobj)
                        procs[w].kill()
                        frames = []
                    for i, result in frames:
                        done[i] = result
                        if on_result is not None:
                            on_result(i, result)
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as e:  # no fork, no pipe, unpicklable job
            log.warning("analysis workers could not start (%s: %s); analyzing here", type(e).__name__, e)
        finally:
            sel.close()
            for w, p in enumerate(procs):
                if p.poll() is None:
                    p.kill()
                p.wait()
                if p.stdout:
                    p.stdout.close()
                missing = [i for i in slices[w] if i not in done]
                if missing:
                    tail = _tail(os.path.join(tmp, f"stderr-{w}.txt"))
                    log.warning("analysis worker %d (exit %s) left %d item(s)%s", w, p.returncode, len(missing),
                                f": {tail}" if tail else "")
    return done


def _tail(path: str, lines: int = 3) -> str:
    try:
        with open(path, "rb") as f:
            text = f.read()[-4000:].decode("utf-8", "replace")
    except OSError:
        return ""
    return " | ".join(text.strip().splitlines()[-lines:])


def main(argv: list[str]) -> int:
    with open(argv[0], "rb") as f:
        fn, shared, items = pickle.load(f)
    out = sys.stdout.buffer
    items.reverse()
    while items:  # popped, so each item and its result are freed once sent: memory stays flat
        i, item = items.pop()
        try:  # an item that fails here is left for the caller to redo
            result = fn(shared, item)
        except Exception as e:
            print(f"item {i}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        try:
            _write_frame(out, (i, result))
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            print(f"item {i}: result not picklable: {e}", file=sys.stderr)
        del item, result
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
