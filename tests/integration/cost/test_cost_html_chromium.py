"""The HTML report opened in a real headless Chromium: no console messages, charts drawn (the cash flow year
by year, the cost curve, the tornado), pixels not blank."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
         "--hide-scrollbars"]


def chromium(tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("chromium not installed (scripts/apt-packages.d/cost.txt)")
    profile = tmp / f"profile-{len(list(tmp.iterdir()))}"
    profile.mkdir()
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True,
                          text=True, timeout=120)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("html")
    out = tmp / "cost.html"
    p = subprocess.run([sys.executable, "-m", "clusterkit", "cost", "report", "--format", "html", "--output", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return tmp, out


def test_harness_sees_console_errors(tmp_path):
    # Control: the same check must catch an error when a page has one.
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("cost-marker"); notDefined();</script></body></html>')
    p = chromium(tmp_path, bad.as_uri(), "--dump-dom")
    msgs = console_messages(p.stderr)
    assert any("cost-marker" in m for m in msgs) and any("notDefined" in m for m in msgs)


def test_no_console_messages_and_charts_in_dom(page):
    tmp, html = page
    text = html.read_text()
    # sources cite their addresses as text; nothing is loaded: no src/href attribute, no url() but the SVG's own
    # clip-path (#plot), no @import
    assert not re.search(r"""(src|href)\s*=|url\((?!#)|@import""", text), "the report must not load anything from outside"
    assert "&lt;https://www.ecb.europa.eu/" in text
    p = chromium(tmp, html.as_uri(), "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    assert console_messages(p.stderr) == []
    dom = p.stdout
    flow = re.search(r'<svg id="cash-flow".*?</svg>', dom, re.S).group(0)
    bars = re.findall(r'<rect class="cf-bar" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)" fill="([^"]+)"',
                      flow)
    assert len(bars) == 6                                                    # years 0..5
    assert bars[0][2] == "#d62728" and {b[2] for b in bars[1:]} == {"#2ca02c"}   # capex out, savings in
    assert len(re.findall(r"\d+(?:\.\d+)?,\d+(?:\.\d+)?", re.search(r'class="cf-cumulative" points="([^"]+)"',
                                                                  flow).group(1))) == 6
    assert "year 0" in flow and "year 5" in flow and "NPV CNY 6.39 M" in flow
    curve = re.search(r'<svg id="cost-curve".*?</svg>', dom, re.S).group(0)
    owned = re.search(r'<polyline class="owned" points="([^"]+)"', curve).group(1)
    assert len(owned.split()) >= 50
    assert len(re.findall(r'<polyline class="rental"', curve)) == 7          # the example's seven rental options
    # every on-demand option breaks even below 100 %: six markers
    assert len(re.findall(r'<circle class="break-even"', curve)) == 6
    assert "break-even 51.0%" in curve
    torn = re.search(r'<svg id="tornado".*?</svg>', dom, re.S).group(0)
    from clusterkit.cost.config import load_config
    from clusterkit.cost.report import build

    kept = build(load_config(None)).bars                                     # the inputs moving it by > 1 %
    assert len(kept) > 15 and len(re.findall(r'<rect class="bar"', torn)) == 2 * len(kept)


def test_screenshot_is_not_blank(page):
    from PIL import Image

    tmp, html = page
    shot = tmp / "shot.png"
    p = chromium(tmp, html.as_uri(), f"--screenshot={shot}", "--window-size=1200,2600")
    assert shot.is_file(), p.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    colors = img.getcolors(maxcolors=1 << 20)
    assert len(colors) > 200                                                 # text, lines, antialiasing
    counts = {c: n for n, c in colors}
    white = counts.get((255, 255, 255), 0)
    assert white < 0.9 * img.width * img.height
    # the tornado's solid bars, in their exact fill colours
    assert counts.get((0x1F, 0x77, 0xB4), 0) > 2000 and counts.get((0xFF, 0x7F, 0x0E), 0) > 2000
    # the owned-cost curve (near-black #111) and a break-even marker's red
    assert counts.get((0x11, 0x11, 0x11), 0) > 200
    assert sum(n for c, n in counts.items() if c[0] > 180 and c[1] < 80 and c[2] < 80) > 50
    # the cash-flow chart: green saving bars, the red capex bar and the cumulative line's blue
    assert counts.get((0x2C, 0xA0, 0x2C), 0) > 2000 and counts.get((0xD6, 0x27, 0x28), 0) > 2000
    assert counts.get((0x1F, 0x3B, 0x99), 0) > 200
