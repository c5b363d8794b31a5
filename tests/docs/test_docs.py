"""The documentation: every code block in README.md and docs/ runs here (in order, per page, in
an empty folder), or says why it cannot in a comment just above it (``<!-- not run: why -->``);
``text`` blocks show output. The site builds with ``mkdocs build --strict``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
REASON = re.compile(r"<!-- not run: (.+?) -->\s*$")


def blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """(language, code, the reason it is not run, or None) of each fenced block of a page."""
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = REASON.search(before)
        found.append((match.group(1), match.group(2), reason.group(1) if reason else None))
    return found


def _bash(code: str, folder: Path) -> None:
    for line in code.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "layerforge", f"a bash block runs layerforge commands only; got: {line}"
        done = subprocess.run([sys.executable, "-m", "layerforge", *words[1:]], cwd=folder, capture_output=True,
                              text=True, timeout=600, env={**os.environ, "COLUMNS": "120"})
        assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def _yaml(code: str, folder: Path) -> None:
    from layerforge.spec.load import load_spec

    first = code.splitlines()[0]
    named = re.match(r"#\s*([\w./-]+\.ya?ml)\s*$", first)
    values = yaml.safe_load(code)
    if named:  # a spec file the next blocks use
        (folder / named.group(1)).write_text(code, encoding="utf-8")
    if isinstance(values, dict) and "data" in values:
        load_spec(values, check_files=False)


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_code_block_runs_or_says_why_not(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    found = blocks(page)
    if page.name == "README.md":  # the two commands: make test is what runs this suite; make demo, below
        language, code, _ = found.pop(0)
        assert [line.split("#")[0].strip() for line in code.splitlines()] == ["make demo", "make test"]
        _bash("layerforge train --runs-dir demo-runs --set train.epochs=2", tmp_path)  # make demo's command
    for language, code, reason in found:
        if reason is not None or language == "text":
            continue
        assert language in ("python", "bash", "yaml"), \
            f"{page.name}: a block in {language or 'no language'} neither runs nor says why not:\n{code[:300]}"
        if language == "python":
            exec(compile(code, f"{page.name}", "exec"), namespace)  # noqa: S102 - our own documentation
        elif language == "bash":
            _bash(code, tmp_path)
        else:
            _yaml(code, tmp_path)


def test_the_count_of_blocks_run():
    counts = {"run": 0, "not run": 0, "output": 0}
    for page in PAGES:
        for language, _, reason in blocks(page):
            counts["output" if language == "text" else "not run" if reason else "run"] += 1
    print(f"documentation code blocks: {counts}")
    assert counts["run"] >= 15 and counts["run"] > counts["not run"]


def test_the_site_builds_strictly(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    built = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "layerforge train" in built and "--runs-dir" in built  # made from the commands themselves
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    assert "cross_validate" in api and "Train the network a spec describes" in api


def test_the_built_site_loads_nothing_from_another_machine(tmp_path):
    from ..report.test_report import BROWSER_ARGS, _chromium

    if _chromium() is None:
        if os.environ.get("LAYERFORGE_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (.ci/run installs it: apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--site-dir", str(site)], cwd=ROOT, check=True,
                   capture_output=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    elsewhere = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=BROWSER_ARGS)
        page = browser.new_page()
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://")
                   else (elsewhere.append(route.request.url), route.abort()))
        for name in ("index.html", "getting-started/index.html", "reference/cli/index.html"):
            page.goto((site / name).as_uri())
            page.wait_for_load_state("load")
        title = page.title()
        browser.close()
    assert elsewhere == [] and title.startswith("Command line")
