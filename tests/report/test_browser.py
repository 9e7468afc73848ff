"""The report in a real browser: headless Chromium opens it offline and reads it.

Debian's ``chromium`` and ``chromium-driver``, driven by selenium, open the page
as a ``file://`` URL with the network off (DevTools offline emulation and a
dead proxy). The test finds no console error and no request but the page's
own, reads the headline numbers from the DOM and compares them with ``spread
--json`` of the same subject, checks that no script ran, and looks at a
screenshot (many colours, the chart and the graph drawn at a real size). Skipped
where Chromium is absent, unless ``CI`` is set: then it fails.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from htmlscan import expected_measures
from report_world import HOSTILE, run

WIDTH = 1280
MAX_HEIGHT = 8000


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = "chromium and chromium-driver are not installed (apt-get install -y "
    reason += "chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium with console and network logs, the network off."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", f"--window-size={WIDTH},1000",
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1,
         "uploadThroughput": -1},
    )  # fmt: skip
    try:
        yield driver
    finally:
        driver.quit()


def _requests(driver: Any) -> tuple[list[str], list[str]]:
    """URLs requested, and those that failed, since the last call."""
    asked, failed = [], []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            asked.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.loadingFailed":
            failed.append(message["params"].get("errorText", "?"))
    return asked, failed


def _open(driver: Any, path: Path) -> None:
    driver.get_log("browser")  # start with empty logs
    driver.get_log("performance")
    driver.get(path.as_uri())
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, min(int(height) + 120, MAX_HEIGHT))


def _dom_measures(driver: Any) -> dict[str, Any]:
    cells = driver.execute_script(
        "return [...document.querySelectorAll('[data-measure]')]"
        ".map(e => [e.dataset.measure, e.dataset.value, e.innerText])"
    )
    out = {}
    for key, value, shown in cells:
        out[key] = json.loads(value)
        if isinstance(out[key], int):  # what a reader sees is the same number
            assert shown.replace(",", "") == str(out[key]), (key, shown)
    return out


def _colours(png: bytes) -> tuple[int, float]:
    """Distinct colours in a screenshot, and the share of non-white pixels."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    counts = image.getcolors(maxcolors=image.width * image.height) or []
    inked = sum(n for n, rgb in counts if sum(rgb) < 3 * 245)
    return len(counts), inked / (image.width * image.height)


def _svg_box(driver: Any, selector: str) -> dict[str, float]:
    box: dict[str, float] = driver.execute_script(
        "const e = document.querySelector(arguments[0]);"
        "if (!e) return null; const r = e.getBoundingClientRect();"
        "return {width: r.width, height: r.height};",
        selector,
    )
    return box


def test_report_in_chromium(indexed: str, browser: Any, tmp_path: Path) -> None:
    """Offline, no console error or failed request; DOM numbers = spread --json."""
    out = tmp_path / "report.html"
    run("report", "hf:org/base", "-o", str(out), "--db", indexed)
    _open(browser, out)
    assert browser.title == "Spread of hf:org/base"
    assert browser.get_log("browser") == []
    asked, failed = _requests(browser)
    assert failed == []
    assert [u for u in asked if u != out.as_uri()] == []
    spread = json.loads(run("spread", "hf:org/base", "--json", "--db", indexed))
    assert _dom_measures(browser) == expected_measures(spread)
    # the hostile repo is on the page as text, and nothing ran
    assert browser.execute_script("return document.scripts.length") == 0
    body = browser.find_element("tag name", "body").text
    assert f"hf:{HOSTILE}" in body
    chart, graph = _svg_box(browser, "svg.chart"), _svg_box(browser, "svg.graph")
    assert min(chart["width"], graph["width"]) > 300
    assert min(chart["height"], graph["height"]) > 50
    png = browser.get_screenshot_as_png()
    shot = Path(os.environ.get("MODELSCAN_REPORT_SHOT") or tmp_path / "report.png")
    shot.write_bytes(png)
    colours, inked = _colours(png)
    assert colours > 200  # text, cards, chart lines and coloured edges
    assert inked > 0.03
    pdf = base64.b64decode(browser.execute_cdp_cmd("Page.printToPDF", {})["data"])
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pdf.startswith(b"%PDF")
    assert 2 <= pages <= 12  # it prints, on a handful of A4/Letter pages


def test_index_page_in_chromium(indexed: str, browser: Any, tmp_path: Path) -> None:
    """The --top page opens offline with no error and one section per family."""
    out = tmp_path / "index.html"
    run("report", "--top", "3", "-o", str(out), "--db", indexed)
    _open(browser, out)
    assert browser.get_log("browser") == []
    asked, failed = _requests(browser)
    assert failed == []
    assert [u for u in asked if u != out.as_uri()] == []
    families = browser.execute_script(
        "return [...document.querySelectorAll('article[data-family]')].length"
    )
    top = json.loads(run("spread", "--top", "3", "--json", "--db", indexed))
    assert families == len(top)
    assert _svg_box(browser, "svg.chart")["height"] > 100
