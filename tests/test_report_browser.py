"""The report as a person sees it: `crmsync demo` writes it, headless Chromium opens it from
disk with the network off, and every chart must draw, with no error and no request leaving
the file.

It drives Debian's `chromium` (apt-get install chromium) through Playwright, and downloads no
browser. Without them a local run skips with the reason; in CI (CI=true) it fails instead,
so a CI that cannot run it never passes by skipping it (.ci/run installs Chromium).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from connector.report.html import CHARTS
from tests.runs import cli

# What each chart draws: bars, or the heatmap's image.
DRAWN = dict.fromkeys(CHARTS, ".barlayer .point") | {
    "chart-agreement": ".heatmaplayer image"}
LOCAL = ("file:", "data:", "blob:")


def system_chromium() -> str:
    """Debian's Chromium and Playwright, or a skip (locally) or failure (CI) saying which
    is missing."""
    problems = []
    try:
        import playwright.sync_api  # noqa: F401, PLC0415
    except ImportError:
        problems.append("Playwright is not installed (pip install -e '.[dev]')")
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(browser).exists():
        problems.append("Debian's Chromium is not installed (apt-get install chromium)")
    if problems:
        reason = "the browser test cannot run: " + "; ".join(problems)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: .ci/run must install it)")
        pytest.skip(reason)
    return browser


def test_the_demos_report_draws_every_chart_offline(tmp_path):
    browser_path = system_chromium()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    demo = cli("demo", "--seed", "60", "--state", "demo.db", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert demo.stdout.rstrip().endswith("demo.html")  # the demo ends with the report's path
    report = tmp_path / "demo.html"

    requests: list[str] = []
    left: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900},
                                          offline=True)

            def only_local(route) -> None:
                url = route.request.url
                if url.startswith(LOCAL):
                    route.continue_()
                else:
                    left.append(url)
                    route.abort()

            context.route("**/*", only_local)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: message.type == "error"
                    and errors.append(message.text))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(report.as_uri())
            for chart in CHARTS:
                page.wait_for_selector(f"#{chart} .main-svg", timeout=30_000)
            drawn = {chart: page.locator(f"#{chart} {DRAWN[chart]}").count() for chart in CHARTS}
            title = page.title()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()

    assert all(drawn.values()), drawn
    assert errors == []
    assert left == []
    assert [url for url in requests if not url.startswith(LOCAL)] == []
    assert requests[0] == report.as_uri()
    assert title.startswith("crmsync report: run 2 (sync)")
    assert (tmp_path / "report.png").stat().st_size > 10_000
