"""Regenerate the report screenshots shown in the README (needs Chromium and Playwright).

    .venv/bin/python docs/screenshots.py

Trains the built-in default (a healthy digits MLP) and a 20-layer sigmoid MLP (vanishing
gradients), then photographs their report.html pages in headless Chromium.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

import layerforge as lf

IMAGES = Path(__file__).resolve().parent / "images"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def main() -> None:
    with tempfile.TemporaryDirectory() as runs_dir:
        healthy = lf.train(runs_dir=runs_dir)
        sick = lf.train({"name": "deep-sigmoid", "data": {"dataset": "digits"},
                         "model": {"layers": [32] * 20, "activation": "sigmoid", "init": "default"},
                         "train": {"epochs": 10}}, runs_dir=runs_dir)
        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
            page = browser.new_page(viewport={"width": 1150, "height": 1350})
            page.goto((healthy.path / "report.html").as_uri())
            page.screenshot(path=str(IMAGES / "report_classification.png"))
            page.goto((sick.path / "report.html").as_uri())
            page.locator("#doctor").screenshot(path=str(IMAGES / "report_doctor.png"))
            browser.close()
    print(f"wrote {IMAGES / 'report_classification.png'} and {IMAGES / 'report_doctor.png'}")


if __name__ == "__main__":
    main()
