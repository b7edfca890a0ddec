"""The HTML report opened in a real headless Chromium: no console messages, charts drawn, pixels not blank."""

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
    assert not re.search(r"""(src|href)\s*=|https?://(?!www\.w3\.org/2000/svg)|@import""", text), \
        "the report must not load anything from outside"
    p = chromium(tmp, html.as_uri(), "--dump-dom")
    assert p.returncode == 0, p.stderr[-2000:]
    assert console_messages(p.stderr) == []
    dom = p.stdout
    curve = re.search(r'<svg id="cost-curve".*?</svg>', dom, re.S).group(0)
    owned = re.search(r'<polyline class="owned" points="([^"]+)"', curve).group(1)
    assert len(owned.split()) >= 50
    assert len(re.findall(r'<polyline class="rental"', curve)) == 4          # the example's four rental options
    # both on-demand options break even below 100 %: two markers
    assert len(re.findall(r'<circle class="break-even"', curve)) == 2
    assert "break-even 59.5%" in curve
    torn = re.search(r'<svg id="tornado".*?</svg>', dom, re.S).group(0)
    assert len(re.findall(r'<rect class="bar"', torn)) == 12                 # 6 inputs x low/high


def test_screenshot_is_not_blank(page):
    from PIL import Image

    tmp, html = page
    shot = tmp / "shot.png"
    p = chromium(tmp, html.as_uri(), f"--screenshot={shot}", "--window-size=1200,1500")
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
