"""report.html for every task, the doctor / report / compare / lr-find commands, and the page in a
real browser."""

import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import layerforge as lf
from layerforge.cli import app

runner = CliRunner()


def _images(page: str) -> list[str]:
    return re.findall(r'<img alt="[^"]*" src="([^"]{0,40})', page)


SPECS = {
    "classification": {"data": {"dataset": "iris"}, "model": {"layers": [8]}, "train": {"epochs": 3}},
    "regression": {"data": {"dataset": "diabetes"}, "model": {"layers": [8]}, "train": {"epochs": 3}},
    "forecasting": {"data": {"dataset": "airline", "lookback": 24, "horizon": 12, "test_size": 24},
                    "model": {"layers": [8]}, "train": {"epochs": 3, "batch_size": 16}},
    "reconstruction": {"data": {"dataset": "digits"}, "model": {"type": "autoencoder", "layers": [16], "latent_size": 2},
                       "train": {"epochs": 2}},
    "generation": {"data": {"dataset": "digits"}, "model": {"type": "gan", "generator": [16], "discriminator": [16]},
                   "train": {"epochs": 2}},
}


@pytest.mark.parametrize("task", list(SPECS))
def test_every_run_writes_a_self_contained_report(task, runs_dir):
    run = lf.train(SPECS[task], runs_dir=runs_dir)
    page = (run.path / "report.html").read_text()
    for section in ("Summary", "Learning curves", "Results", "Doctor", "Data", "Model", "Spec"):
        assert f"<h2>{section}</h2>" in page
    sources = _images(page)
    assert len(sources) >= 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    expected = {"classification": ["confusion matrix", "ROC curve"], "regression": ["predicted vs true"],
                "forecasting": ["forecast vs actual"], "reconstruction": ["reconstructions", "latent"],
                "generation": ["samples", "frechet"]}[task]
    for alt in expected:
        assert f'alt="{alt}"' in page
    if task != "generation":
        assert 'alt="gradient flow"' in page


def test_report_command_rebuilds_and_doctor_command_prints_findings(runs_dir, tmp_path):
    spec = {"data": {"dataset": "digits"}, "model": {"layers": [32] * 12, "activation": "sigmoid", "init": "default"},
            "train": {"epochs": 2, "report": False}}
    run = lf.train(spec, runs_dir=runs_dir)
    assert not (run.path / "report.html").exists()
    result = runner.invoke(app, ["report", str(run.path)])
    assert result.exit_code == 0, result.output
    page = (run.path / "report.html").read_text()
    assert "vanishing gradients" in page and 'class="finding warning"' in page
    result = runner.invoke(app, ["doctor", str(run.path)])
    assert result.exit_code == 0
    assert "warning vanishing gradients: gradients vanish on the way back" in result.output
    assert "try: use model.activation: relu" in result.output
    result = runner.invoke(app, ["doctor", str(tmp_path)])
    assert result.exit_code == 2 and "has no diagnosis.json" in result.output


def test_compare_overlays_curves_and_lists_metrics(runs_dir, tmp_path):
    a = lf.train(SPECS["classification"], runs_dir=runs_dir)
    b = lf.train(SPECS["classification"], overrides=["model.layers=[16]", "name=wider"], runs_dir=runs_dir)
    out = tmp_path / "compare.html"
    result = runner.invoke(app, ["compare", str(a.path), str(b.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert a.path.name in page and b.path.name in page
    assert 'alt="val_loss"' in page and "test accuracy" in page
    assert runner.invoke(app, ["compare", str(a.path)]).exit_code == 2


def test_lr_find_suggests_a_rate_and_saves_the_plot(tmp_path):
    from layerforge.recipes.lr_range import lr_range_test

    finding = lr_range_test({"data": {"dataset": "iris"}, "model": {"layers": [16]}, "train": {"batch_size": 16}},
                            steps=60)
    assert 1e-5 < finding.suggestion < 1.0 and finding.suggestion <= finding.minimum / 10
    assert finding.losses[-1] > min(finding.losses)
    out = tmp_path / "lr.png"
    result = runner.invoke(app, ["lr-find", "--set", "train.epochs=1", "--steps", "30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "suggested learning rate" in result.output and out.read_bytes()[:4] == b"\x89PNG"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]


def render(path: Path, screenshot: Path | None = None) -> tuple[list[str], list[bool]]:
    """Open ``path`` in headless Chromium: console errors, and whether each image loaded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        loaded = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        if screenshot is not None:
            page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    return errors, loaded


def test_report_renders_in_headless_chromium(runs_dir, tmp_path):
    if _chromium() is None:
        if os.environ.get("LAYERFORGE_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (.ci/run installs it: apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    run = lf.train(SPECS["classification"], runs_dir=runs_dir)
    errors, loaded = render(run.path / "report.html", tmp_path / "shot.png")
    assert errors == []
    assert len(loaded) >= 5 and all(loaded)
    assert (tmp_path / "shot.png").stat().st_size > 20_000


def test_tensorboard_logging_writes_every_epoch_scalar(runs_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = lf.train({**SPECS["classification"], "train": {"epochs": 3, "log": ["tensorboard"]}}, runs_dir=runs_dir)
    events = EventAccumulator(str(run.path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/accuracy", "run/lr"} <= tags
    assert [e.step for e in events.Scalars("val/accuracy")] == [1, 2, 3]
    assert events.Scalars("train/loss")[-1].value == pytest.approx(run.history[-1]["train_loss"], rel=1e-6)
    # the HParams view: the spec's values and the last epoch's numbers
    from tensorboard.plugins.hparams import plugin_data_pb2

    hparams = events.PluginTagToContent("hparams")
    started = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/session_start_info"])
    values = started.session_start_info.hparams
    assert values["train.epochs"].number_value == 3 and values["model.type"].string_value == "mlp"
    assert events.Scalars("hparam/val_accuracy")[-1].value == pytest.approx(run.history[-1]["val_accuracy"])


def test_the_report_page_forbids_scripts_even_if_one_were_slipped_in(runs_dir, tmp_path):
    if _chromium() is None:
        if os.environ.get("LAYERFORGE_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (.ci/run installs it: apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    run = lf.train(SPECS["classification"], runs_dir=runs_dir)
    page_text = (run.path / "report.html").read_text()
    injected = page_text.replace("</head>", '<script>document.title = "script ran"</script></head>', 1)
    (tmp_path / "injected.html").write_text(injected)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=BROWSER_ARGS)
        page = browser.new_page()
        blocked = []
        page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None)
        page.goto((tmp_path / "injected.html").resolve().as_uri())
        page.wait_for_load_state("load")
        title = page.title()
        images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        browser.close()
    assert title != "script ran" and blocked, (title, blocked)
    assert len(images) >= 5 and all(images)  # the policy still lets the page's own pictures show


def test_trust_sections_render_in_headless_chromium(runs_dir, tmp_path):
    """Explanations, robustness, fairness and its mitigation, each in the report and drawn by a browser."""
    if _chromium() is None:
        if os.environ.get("LAYERFORGE_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required here (.ci/run installs it: apt-get install chromium)")
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    import numpy as np
    import pandas as pd

    images = lf.train({"data": {"dataset": "digits_images"}, "model": {"type": "mlp", "layers": [32]},
                       "train": {"epochs": 3}}, runs_dir=runs_dir)
    lf.explain(images, rows=20)
    lf.attack(images, eps=[0.0, 0.1, 0.3], steps=5)
    from layerforge.report.html import build_report

    build_report(images.path)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "group": rng.choice(["a", "b"], 300)})
    frame["y"] = np.where(frame["x"] > 0, "yes", "no")
    frame.to_csv(tmp_path / "people.csv", index=False)
    people = lf.train({"data": {"path": str(tmp_path / "people.csv"), "target": "y"}, "model": {"layers": [4]},
                       "train": {"epochs": 3}}, runs_dir=runs_dir)
    lf.audit_fairness(people, ["group"], positive="yes", bootstrap=20)
    version = lf.mitigate_fairness(people, "group", positive="yes", bootstrap=20).version_dir
    build_report(people.path)
    build_report(version)
    for path, sections in ((images.path, ("explanations", "robustness")), (people.path, ("fairness",)),
                           (version, ("fairness-mitigation",))):
        page = (path / "report.html").read_text()
        assert all(f'<section id="{name}">' in page for name in sections)
        errors, loaded = render(path / "report.html")
        assert errors == [] and all(loaded)


def test_a_spec_with_a_search_space_shows_it_as_set(tmp_path):
    """``layerforge train`` on a spec that carries a search section (which training ignores)
    writes its report, the search space among what the run set."""
    run = lf.train({"data": {"dataset": "iris"}, "model": {"layers": [8]}, "train": {"epochs": 1},
                    "search": {"trials": 2, "space": {"model.layers": {"choice": [[16], [32]]}}}},
                   runs_dir=tmp_path)
    page = (run.path / "report.html").read_text()
    as_set = page.split("What this run set", 1)[1].split("<details>", 1)[0]
    assert "model.layers:" in as_set and "choice:" in as_set and "log_uniform" not in as_set
