"""Real components for the burn-in tests: the exporter process and a real Prometheus."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def free_port() -> int:
    """A port the kernel says is free now (for daemons that can't report a port-0 bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Exporter:
    def __init__(self, db: Path, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "clusterkit", "exporter", "--port", "0", "--db", str(db),
                                      *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            stop(self.proc)
            raise RuntimeError(f"exporter did not start: {line}{self.proc.stdout.read()}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.target = self.url.split("//", 1)[1].split("/", 1)[0]

    def scrape(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as r:
            return r.read().decode()


@pytest.fixture
def start_exporter():
    started: list[Exporter] = []

    def start(db: Path, *args: str) -> Exporter:
        e = Exporter(db, *args)
        started.append(e)
        return e

    yield start
    for e in started:
        stop(e.proc)


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str], rules: Path | None = None):
        binary = shutil.which("prometheus")
        if not binary:
            pytest.skip("prometheus not installed (apt-get install prometheus; see scripts/apt-packages.d/burnin.txt)")
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
               "scrape_configs": [{"job_name": "clusterkit", "static_configs": [{"targets": targets}]}]}
        if rules:
            cfg["rule_files"] = [str(rules)]
        (workdir / "prometheus.yml").write_text(json.dumps(cfg))  # JSON is YAML
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready(workdir)

    def _wait_ready(self, workdir: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("prometheus exited:\n" + (workdir / "prometheus.log").read_text()[-3000:])
            try:
                with urllib.request.urlopen(self.base + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("prometheus not ready in 30 s")

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query_until(self, expr: str, pred=lambda res: bool(res), timeout: float = 20.0) -> list:
        deadline = time.monotonic() + timeout
        res: list = []
        while time.monotonic() < deadline:
            res = self.api("query", query=expr)["result"]
            if pred(res):
                return res
            time.sleep(0.2)
        raise AssertionError(f"{expr}: no matching result in {timeout:g} s, last {res}")

    def close(self) -> None:
        stop(self.proc)
        self.log.close()


@pytest.fixture
def start_prometheus(tmp_path):
    started: list[Prometheus] = []

    def start(targets: list[str], rules: Path | None = None) -> Prometheus:
        p = Prometheus(tmp_path / f"prom{len(started)}", targets, rules)
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()
