"""Browser test (opt-in: ``--run-browser``; CI runs it): live Dask panes in JupyterLab and the /status page.

Needs ``pip install ".[browser]"`` (JupyterLab, dask-labextension, Selenium) and Debian's
``chromium`` + ``chromium-driver``. Screenshots go to ``tmp_path`` and, if set, ``$EDNN_SCREENSHOTS``.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

# Bokeh 3 keeps its documents in window.Bokeh; count the rows of every ColumnDataSource (live data)
COUNT_ROWS = """
const docs = (window.Bokeh && window.Bokeh.documents) || [];
let rows = 0;
for (const doc of docs) {
  for (const m of doc.all_models) {
    if (m.type !== "ColumnDataSource" && (m.constructor || {}).name !== "ColumnDataSource") continue;
    const d = m.data;
    const cols = d instanceof Map ? [...d.values()] : Object.values(d || {});
    for (const c of cols) rows = Math.max(rows, (c && c.length) || 0);
  }
}
return docs.length ? rows : -1;
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _driver(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("Debian chromium and chromium-driver are needed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000",
                f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(chromedriver), options=opts)


def _screenshot(driver, tmp_path, name):
    path = tmp_path / name
    driver.save_screenshot(str(path))
    if os.environ.get("EDNN_SCREENSHOTS"):
        out = Path(os.environ["EDNN_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, out / name)
    return path


def _wait(fn, timeout=60.0, every=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    return fn()


@pytest.fixture
def live_evaluation(tmp_path):
    """A 2-worker LocalCluster with an evaluation running in the background (restarted until the test ends)."""
    from ednn_dask.cluster import local_cluster
    from ednn_dask.evaluate import evaluate
    from ednn_dask.scaling import sheet_file

    sheet = sheet_file(0.03, tmp_path)
    stop = threading.Event()
    with local_cluster(2, 1) as client:
        def loop():
            while not stop.is_set():
                evaluate(sheet, None, client=client)

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        yield client
        stop.set()
        t.join(timeout=120)


def test_status_page_renders_live_data(live_evaluation, tmp_path):
    driver = _driver(tmp_path)
    try:
        driver.get(live_evaluation.dashboard_link)  # .../status
        assert "Dask" in driver.title
        rows = _wait(lambda: driver.execute_script(COUNT_ROWS) > 0, timeout=60)
        assert rows, "the /status page shows no data"
        png = _screenshot(driver, tmp_path, "dask-status.png")
        assert png.stat().st_size > 10_000
    finally:
        driver.quit()


@pytest.fixture
def jupyterlab(tmp_path, live_evaluation):
    port, token = _free_port(), "ednn-test-token"
    settings = tmp_path / "lab-settings" / "dask-labextension"
    settings.mkdir(parents=True)
    dashboard = live_evaluation.dashboard_link.rsplit("/status", 1)[0]
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"defaultURL": dashboard}))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
           f"--LabApp.user_settings_dir={tmp_path / 'lab-settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/lab?token={token}"
    import urllib.request

    def up():
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/api?token={token}", timeout=2).status == 200
        except OSError:
            return False

    try:
        assert _wait(up, timeout=90), "JupyterLab did not start"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_jupyterlab_dask_panes_render_live_data(jupyterlab, tmp_path):
    from selenium.webdriver.common.by import By

    driver = _driver(tmp_path)
    try:
        driver.get(jupyterlab)
        tab = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, '[data-id="dask-dashboard-launcher"]'), 90)
        assert tab, "no Dask tab in the JupyterLab sidebar (dask-labextension not loaded)"
        tab[0].click()

        def items():
            found = {e.text.strip().lower(): e for e in driver.find_elements(By.CSS_SELECTOR, ".dask-DashboardListing-item")}
            return found if {"task stream", "progress"} <= set(found) else None  # shown upper-case by CSS

        listing = _wait(items, 60)
        if not listing:
            _screenshot(driver, tmp_path, "jupyterlab-no-panes.png")
        assert listing, "the Dask sidebar lists no dashboard panes (dashboard URL not accepted)"
        for name in ("task stream", "progress"):
            _wait(items, 10)[name].click()
            time.sleep(1.0)
        frames = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, ".dask-DaskDashboard-widget iframe"), 30)
        assert len(frames) >= 2, "the panes did not open"
        live = []
        for frame in frames[:2]:
            driver.switch_to.frame(frame)
            live.append(bool(_wait(lambda: driver.execute_script(COUNT_ROWS) > 0, timeout=60)))
            driver.switch_to.default_content()
        png = _screenshot(driver, tmp_path, "jupyterlab-dask-panes.png")
        assert all(live), f"panes without live data: {live}"
        assert png.stat().st_size > 10_000
    finally:
        driver.quit()
