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


def fake_run(folder: Path, method: str, density: float, seed: int, avg: float, **extra) -> None:
    folder.mkdir(parents=True)
    acc = [[avg + 0.3, None, None], [avg + 0.1, avg + 0.2, None], [avg, avg - 0.1, avg + 0.1]]
    config = {"method": method, "density": density, "seed": seed, **extra.pop("config", {})}
    (folder / "results.json").write_text(json.dumps({
        "method": method, "benchmark": "toy", "model": "lenet", "density": density, "seed": seed, "acc_matrix": acc,
        "avg_acc": avg, "forgetting": 0.2, "sparse_overlap": [0.0, 0.3, 0.5], "total_time_s": 1.0,
        "benchmark_info": {"data_fingerprint": "c0ffee00" * 3}, "config": config, **extra,
    }))


def class_il(inference: float, accuracy: float) -> dict:
    return {"avg_task_inference_acc": inference, "avg_inferred_acc": accuracy, "task_inference_acc": [inference] * 3,
            "inferred_task_acc": [accuracy] * 3}


def test_report_page_in_a_real_browser(tmp_path):
    executable = browser_path()
    if executable is None:
        need("chromium-headless-shell is not installed (apt-get install chromium-headless-shell)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("playwright is not installed (pip install playwright)")
    runs = tmp_path / "runs"
    for i, (method, density) in enumerate([("exssnet", 0.1), ("exssnet", 0.05), ("supsup", 0.1)]):
        for seed in (0, 1):
            fake_run(runs / f"{i}-{seed}", method, density, seed, 90.0 + i + seed)
    fake_run(runs / "0-0-again", "exssnet", 0.1, 0, 80.0)  # seed 0 once more: must not count as a third seed
    fake_run(runs / "0-0-two-processes", "exssnet", 0.1, 0, 85.0, config={"world_size": 2})  # another setting
    for seed in (0, 1):  # class-IL runs: their task-inference and class-IL accuracy must be shown
        fake_run(runs / f"cil-{seed}", "supsup", 0.05, seed, 95.0, config={"scenario": "class-il"},
                 class_il=class_il(70.0 + seed, 60.0 + seed))
    page_path = build_report([runs], tmp_path / "report")
    embedded = page_path.read_text().count('src="data:image/png;base64,')
    assert embedded >= 5
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 800, "height": 900})
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            response = page.goto(page_path.as_uri(), wait_until="load")
            assert response is None or response.ok
            images = page.evaluate(
                "() => Promise.all(Array.from(document.images).map(async (img) => {"
                "  try { await img.decode(); } catch (e) { return [img.alt, 0, 0]; }"
                "  return [img.alt, img.naturalWidth, img.naturalHeight]; }))")
            title = page.title()
            overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            header = page.locator("table").first.locator("th").all_inner_texts()
            rows = page.evaluate(
                "() => Array.from(document.querySelectorAll('h3 + .scroll table tbody tr')).map("
                "  (tr) => Array.from(tr.cells).map((td) => td.innerText))")
            toc = page.evaluate(
                "() => Array.from(document.querySelectorAll('nav a')).map("
                "  (a) => [a.innerText, !!document.getElementById(a.getAttribute('href').slice(1))])")
            warning = page.evaluate("() => (document.querySelector('.warning') || {innerText: ''}).innerText")
        finally:
            browser.close()
    assert title == "exssnet report"
    assert len(images) == embedded
    assert all(width == 640 and height == 480 for _, width, height in images), images
    assert problems == []
    assert overflow <= 0  # readable at 800 px: wide tables scroll inside their own box
    assert toc and all(found for _, found in toc), toc  # a table of contents whose every link has a target
    column = {name: header.index(name) for name in header}
    assert "task inference (%)" in column and "class-IL acc (%)" in column
    by_label = {(r[column["method"]], r[column["density"]], r[column["other settings"]]): r for r in rows}
    cil = by_label[("supsup", "0.05", "")]
    assert cil[column["task inference (%)"]] == "70.50 ± 0.71" and cil[column["class-IL acc (%)"]] == "60.50 ± 0.71"
    assert by_label[("exssnet", "0.1", "world_size=1")][column["task inference (%)"]] == "–"
    # no seed is pooled twice: each seeds cell lists distinct seeds, the duplicate is flagged, not averaged
    for row in rows:
        seeds = row[column["seeds"]].split(",")
        assert len(seeds) == len(set(seeds)), row
    one_process = by_label[("exssnet", "0.1", "world_size=1")]
    assert one_process[column["seeds"]] == "0,1" and one_process[column["avg acc, task id given (%)"]] == "90.50 ± 0.71"
    assert "seed 0: 2 runs (different accuracies)" in one_process[column["duplicate runs (not pooled)"]]
    two_processes = by_label[("exssnet", "0.1", "world_size=2")]
    assert two_processes[column["seeds"]] == "0" and two_processes[column["avg acc, task id given (%)"]] == "85.00"
    assert "0-0-again" in warning
