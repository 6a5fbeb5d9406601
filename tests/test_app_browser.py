"""The Streamlit app in a real browser (headless Chromium through Playwright) at 1440 and 800 px.

Skipped unless playwright is installed and a Chromium binary exists (Debian: ``apt-get install chromium``;
``HWPERF_CHROMIUM`` points elsewhere). With ``HWPERF_SCREENSHOTS=1`` the screenshots are written to docs/
(the committed ones), otherwise to a temporary folder.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CHROMIUM = os.environ.get("HWPERF_CHROMIUM", "/usr/bin/chromium")
sync_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start")
    yield url
    proc.terminate()
    stderr = proc.communicate(timeout=20)[1].decode()
    assert "Traceback" not in stderr and "deprecat" not in stderr.lower(), stderr[-2000:]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path):
    return ROOT / "docs" if os.environ.get("HWPERF_SCREENSHOTS") == "1" else tmp_path


def _open(browser, url, width, selector, height=1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_selector(selector, timeout=90_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=90_000)
    page.wait_for_timeout(800)  # plotly draws after the script run ends
    return page


def test_three_gpu_comparison_of_llama_3_70b(server, browser, shots):
    page = _open(browser, f"{server}/?view=Compare&model=llama-3-70b", 1440, '[data-testid="stPlotlyChart"]',
                 height=1100)
    assert page.get_by_text("Compare: llama-3-70b").count() == 1
    for gpu in ("h100-sxm5-80gb TP8 bf16", "h200-sxm-141gb TP8 bf16", "mi300x TP8 bf16"):
        assert page.get_by_text(gpu).count() >= 1  # grid cells (drawn on a canvas, present in the DOM)
    assert page.locator('[data-testid="stAlert"]').count() == 0
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1
    page.screenshot(path=str(shots / "app-compare-llama-3-70b.png"), full_page=True)
    page.close()


def test_infeasible_configuration_shows_its_error(server, browser, shots):
    page = _open(browser, f"{server}/?model=llama-3-70b", 1440, '[data-testid="stAlert"]')
    alert = page.locator('[data-testid="stAlert"]').first.inner_text()
    assert "tensor_parallel" in alert and "GB" in alert
    page.screenshot(path=str(shots / "app-infeasible.png"))
    page.close()


def test_roofline_view(server, browser, shots):
    page = _open(browser, server, 1440, '[data-testid="stMetricValue"]')
    page.get_by_role("tab", name="Roofline").click()
    page.get_by_text("calibrated ceiling").first.wait_for(timeout=60_000)
    page.wait_for_timeout(800)
    assert page.get_by_text("arithmetic intensity").count() >= 1
    page.screenshot(path=str(shots / "app-roofline.png"))
    page.close()


def test_800px_layout_keeps_every_metric_whole(server, browser, shots):
    page = _open(browser, server, 800, '[data-testid="stMetricValue"]', height=1200)
    values = page.locator('[data-testid="stMetricValue"]')
    assert values.count() == 8
    clipped = values.evaluate_all("els => els.filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)")
    assert not clipped, clipped
    page.screenshot(path=str(shots / "app-800px.png"), full_page=True)
    page.close()
