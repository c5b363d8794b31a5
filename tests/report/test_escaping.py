"""Every value a page reads from a run's JSON files is escaped: markup planted in every string
(and every free-form key) of every record the report and the compare page read never reaches
the page as markup."""

import json
import shutil

import numpy as np
import pandas as pd

import layerforge as lf
from layerforge.files import sealed
from layerforge.report.html import build_comparison, build_report

MARKUP = '<form action="https://example.com"><meta http-equiv="refresh" content="0;url=https://example.com">'
FREE_KEYS = {"importance", "permutation", "columns", "groups", "thresholds", "graphs", "latency"}
CLOSED = {"severity", "worst", "constraint"}  # a closed set of words, checked on reading


def _planted(value, free: bool = False):
    if isinstance(value, dict):
        return {(f"{key}{MARKUP}" if free else key): item if key in CLOSED else _planted(item, key in FREE_KEYS)
                for key, item in value.items() if key != "content_sha256"}
    if isinstance(value, list):
        return [_planted(item) for item in value]
    if isinstance(value, str):
        return value + MARKUP
    return value


def test_markup_in_every_record_stays_text(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=300), "group": rng.choice(["a", "b"], 300)})
    frame["y"] = np.where(frame["x"] > 0, "yes", "no")
    frame.to_csv(tmp_path / "rows.csv", index=False)
    run = lf.train({"data": {"path": str(tmp_path / "rows.csv"), "target": "y"}, "model": {"layers": [4]},
                    "train": {"epochs": 2}}, runs_dir=tmp_path / "runs")
    lf.explain(run, rows=20)
    lf.attack(run, eps=[0.0, 0.2], steps=2)
    lf.audit_fairness(run, ["group"], positive="yes", bootstrap=5)
    run.export()
    version = lf.mitigate_fairness(run, "group", positive="yes", bootstrap=5).version_dir
    copy = tmp_path / "planted"
    shutil.copytree(run.path, copy)
    shutil.copytree(version / "fairness", copy / "fairness", dirs_exist_ok=True)
    for path in [*copy.glob("*/*.json"), copy / "metrics.json", copy / "diagnosis.json"]:
        if not path.is_file() or path.name == "runtime.json":
            continue
        planted = _planted(json.loads(path.read_text()))
        path.write_text(json.dumps(sealed(planted) if path.name == "parity.json" else planted))
    manifest = json.loads((copy / "model.json").read_text())
    manifest.pop("files")  # the planted files no longer match their checksums: read them anyway
    manifest.pop("content_sha256")
    (copy / "model.json").write_text(json.dumps(manifest))
    (copy / ".partial").write_text("")  # a run still training lists no checksums
    pages = [build_report(copy).read_text(), build_comparison([run.path, copy], tmp_path / "compare.html").read_text()]
    for page in pages:
        assert "<form" not in page and page.count("<meta http-equiv") == 1  # the page's own policy only
        assert "&lt;form action=" in page or page is pages[1]
    assert all(f"<h2>{title}</h2>" in pages[0] for title in ("Export", "Explanations", "Fairness", "Robustness",
                                                             "Fairness mitigation"))
