"""The HTML report in a real browser: Debian's chromium-headless-shell driven by Playwright.

The page must load, every image decode and no console error appear. Skipped where the browser or
Playwright is missing, unless EXSSNET_REQUIRE_BROWSER=1 (set by .ci/run after installing them).
"""

import json
import os
import shutil
from pathlib import Path

import pytest

from exssnet.report import build_report

BROWSER_PATHS = ("/usr/lib/chromium/chromium-headless-shell", "/usr/bin/chromium-headless-shell")


def browser_path() -> str | None:
    found = shutil.which("chromium-headless-shell")
    return found or next((p for p in BROWSER_PATHS if Path(p).is_file()), None)


def need(reason: str) -> None:
    if os.environ.get("EXSSNET_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test required in CI but {reason}")
    pytest.skip(reason)


def fake_run(folder: Path, method: str, density: float, seed: int, avg: float) -> None:
    folder.mkdir(parents=True)
    acc = [[avg + 0.3, None, None], [avg + 0.1, avg + 0.2, None], [avg, avg - 0.1, avg + 0.1]]
    (folder / "results.json").write_text(json.dumps({
        "method": method, "benchmark": "toy", "model": "lenet", "density": density, "seed": seed, "acc_matrix": acc,
        "avg_acc": avg, "forgetting": 0.2, "sparse_overlap": [0.0, 0.3, 0.5], "total_time_s": 1.0,
        "benchmark_info": {"data_fingerprint": "c0ffee00" * 3}, "config": {"method": method, "density": density, "seed": seed},
    }))


def test_report_page_in_a_real_browser(tmp_path):
    executable = browser_path()
    if executable is None:
        need("chromium-headless-shell is not installed (apt-get install chromium-headless-shell)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("playwright is not installed (pip install playwright)")
    for i, (method, density) in enumerate([("exssnet", 0.1), ("exssnet", 0.05), ("supsup", 0.1)]):
        for seed in (0, 1):
            fake_run(tmp_path / "runs" / f"{i}-{seed}", method, density, seed, 90.0 + i + seed)
    page_path = build_report([tmp_path / "runs"], tmp_path / "report")
    embedded = page_path.read_text().count('src="data:image/png;base64,')
    assert embedded >= 5
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            response = page.goto(page_path.as_uri(), wait_until="load")
            assert response is None or response.ok
            images = page.evaluate(
                "() => Promise.all(Array.from(document.images).map(async (img) => {"
                "  try { await img.decode(); } catch (e) { return [img.alt, 0, 0]; }"
                "  return [img.alt, img.naturalWidth, img.naturalHeight]; }))")
            title = page.title()
        finally:
            browser.close()
    assert title == "exssnet report"
    assert len(images) == embedded
    assert all(width == 640 and height == 480 for _, width, height in images), images
    assert problems == []
