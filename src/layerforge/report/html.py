"""report.html: one self-contained page per run (images embedded, no scripts, no network), and a
page comparing runs."""

from __future__ import annotations

import base64
import html
import math
import time
from pathlib import Path
from typing import Any

import torch

from ..capabilities import RECORDED
from ..doctor.verdicts import late, per_layer, unit_health
from ..errors import DataError, LayerforgeError
from ..figures import Note, Passage, Picture, Table, charts, number_text
from ..files import atomic_write, read_jsonl, sha256_file
from ..recipes.scaffold import as_tensors
from ..run.directory import Run
from ..run.records import Diagnosis
from ..run.store import DIAGNOSIS, DOCTOR_LOG, MODEL, REPORT, SPEC, read_record, verified
from ..summary import layer_table

# The page may show its own inline style and embedded (data:) pictures; nothing else loads or
# runs, not even if a tampered run file slipped markup past the escaping.
CONTENT_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0; color: #111827; background: #f9fafb; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; padding-bottom: 0.3rem; }
.sub { color: #6b7280; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.9rem; background: white; }
th, td { border: 1px solid #e5e7eb; padding: 4px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: white; border: 1px solid #e5e7eb; padding: 10px; overflow-x: auto; font-size: 0.85rem; }
img { max-width: 100%; background: white; border: 1px solid #e5e7eb; margin: 6px 6px 6px 0; }
.finding { border-left: 5px solid; background: white; padding: 8px 12px; margin: 8px 0; }
.finding .kind { font-weight: 600; }
.finding .fix { color: #374151; margin-top: 4px; }
.info { border-color: #3b82f6; } .warning { border-color: #f59e0b; } .error { border-color: #dc2626; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 9px; color: white; font-size: 0.75rem;
         margin-right: 6px; }
.badge.info { background: #3b82f6; } .badge.warning { background: #f59e0b; } .badge.error { background: #dc2626; }
.ok { color: #047857; }
details summary { cursor: pointer; color: #374151; }
.wide { overflow-x: auto; max-width: 100%; }
"""


def _image(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return '<td class="num">-</td>'
        if isinstance(value, float):
            return f'<td class="num">{number_text(value)}</td>'
        if isinstance(value, int) and not isinstance(value, bool):
            return f'<td class="num">{value:,}</td>'
        return f"<td>{html.escape(str(value))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'  # scrolls


def _page(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f'<section id="{html.escape(name.lower().replace(" ", "-"))}"><h2>{html.escape(name)}</h2>'
                   f"{content}</section>" for name, content in sections)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_POLICY}">'
            f'<title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f'<body><main><h1>{html.escape(title)}</h1><p class="sub">{html.escape(subtitle)}</p>{body}'
            "</main></body></html>")


# -- sections ---------------------------------------------------------------------------------

def _short(value) -> str:
    """A value of the inputs' description; a long list (positions of blocks) as its length."""
    return f"{len(value)} entries" if isinstance(value, (list, tuple)) and len(value) > 8 else str(value)


def _data_section(manifest) -> str:
    inputs = manifest.inputs.describe()
    shape = ", ".join(f"{k} {_short(v)}" for k, v in inputs.items() if k != "kind")
    rows = [["source", manifest.source], ["task", manifest.task], ["target", manifest.target or "-"],
            ["input", f"{inputs['kind']} ({shape})"]]
    rows += [[f"{name} rows", count] for name, count in manifest.rows.items()]
    if manifest.classes:
        classes = manifest.classes
        shown = ", ".join(map(str, classes[:20])) + (", ..." if len(classes) > 20 else "")
        rows.append(["classes", f"{len(classes)}: {shown}"])
    if manifest.anomaly_classes:
        rows.append(["anomaly classes", ", ".join(map(str, manifest.anomaly_classes))])
    if manifest.split is not None:
        rows.append(["split", ", ".join(f"{k} {v}" for k, v in manifest.split.plan.items())])
    return _table(["", ""], rows)


def _spec_section(run: Run) -> str:
    """The keys the run's author set (those that differ from their defaults), then the whole
    resolved spec folded away."""
    import yaml
    from pydantic_core import to_jsonable_python

    from ..spec.load import changed, set_key

    resolved = (run.path / SPEC).read_text(encoding="utf-8")
    keys: dict = {}
    for key, value in changed(run.spec).items():  # a value may hold sections (a search space's)
        set_key(keys, key, to_jsonable_python(value, exclude_none=True), key)
    given = yaml.safe_dump(keys, sort_keys=False, default_flow_style=None)
    return (f"<p>What this run set (the keys that differ from their defaults):</p><pre>{html.escape(given)}</pre>"
            f"<details><summary>the resolved spec: every key, defaults filled in "
            f"({resolved.count(chr(10))} lines)</summary><pre>{html.escape(resolved)}</pre></details>")


def _model_section(run: Run) -> str:
    model = run.model
    labels = None
    if run.task.num_classes:
        labels = torch.arange(2) % run.task.num_classes
    rows, total, trainable = layer_table(model, model.example_inputs(2), labels)
    table = _table(["layer", "type", "output shape", "parameters"], [list(r) for r in rows])
    return (f"<p>{html.escape(run.manifest.model.spec.type)}: {total:,} parameters ({trainable:,} trainable)"
            f"</p><details open><summary>layers</summary>{table}</details>")


def _metrics_section(metrics: dict) -> str:
    splits = [s for s in ("val", "test") if isinstance(metrics.get(s), dict)]
    names = list(dict.fromkeys(k for s in splits for k in metrics[s]))
    rows = [[name, *(metrics[s].get(name, float("nan")) for s in splits)] for name in names]
    epochs, best = (html.escape(str(metrics.get(key))) for key in ("epochs", "best_epoch"))
    facts = f"<p>{epochs} epochs; best epoch {best}"
    facts += "; stopped early</p>" if metrics.get("stopped_early") else "</p>"
    return facts + _table(["metric", *splits], rows)


def _block(block) -> str:
    if isinstance(block, Picture):
        return _image(block.png, block.alt)
    if isinstance(block, Passage):
        return f"<p>{html.escape(block.intro)}</p><pre>{html.escape(block.text)}</pre>"
    if isinstance(block, Table):
        title = f"<h3>{html.escape(block.title)}</h3>" if block.title else ""
        return title + _table(block.header, block.rows)
    return f"<p>{html.escape(block.text)}</p>"


def _task_section(run: Run, held_out) -> str:
    """What the task shows of its results: confusion matrix and ROC, residuals, a forecast,
    pictures of autoencoders and GANs, a language model's sample text."""
    pictures = {name: verified(run.path, path, run.manifest.files)
                for name, path in run.metrics.get("pictures", {}).items()}
    try:
        blocks = run.task.report_blocks(run.model, held_out, encoder=run.predictor.encoder, pictures=pictures,
                                        target=run.manifest.target)
    except DataError as error:  # the held-out rows cannot be rebuilt (the source moved or changed)
        blocks = [Note(f"no results: {error}")]
    return "".join(_block(b) for b in blocks)


def _doctor_section(run: Run) -> str:
    if not (run.path / DIAGNOSIS).is_file():
        return "<p>no diagnosis (the doctor was off)</p>"
    diagnosis = read_record(run.path, DIAGNOSIS, Diagnosis, run.manifest.files)
    parts = []
    if not diagnosis.findings:
        parts.append('<p class="ok">No findings: gradients, units, learning rate and fit look healthy.</p>')
    for item in diagnosis.findings:  # severity is one of info, warning, error (checked on reading)
        fix = f'<div class="fix">Try: {html.escape(item.fix)}</div>' if item.fix else ""
        parts.append(f'<div class="finding {item.severity}"><span class="badge {item.severity}">'
                     f'{item.severity}</span><span class="kind">{html.escape(item.kind.replace("_", " "))}'
                     f'</span><div>{html.escape(item.message)}</div>{fix}</div>')
    measurements = read_jsonl(verified(run.path, DOCTOR_LOG, run.manifest.files))
    if measurements:
        rms = per_layer(measurements, "grad_rms")
        update = per_layer(measurements, "update_ratio")
        layers = list(rms)
        parts.append(_image(charts.gradient_flow(layers, [rms[n] for n in layers],
                                                  [update.get(n) for n in layers] if update else None),
                            "gradient flow"))
        health = unit_health(late(measurements))
        if health:
            def share(name, key):
                value = health[name][key]
                return None if math.isnan(value) else value

            names = list(health)
            parts.append(_image(charts.unit_health(names, [share(n, "dead") for n in names],
                                                    [share(n, "saturated") for n in names]), "unit health"))
        parts.append(f"<p>{len(measurements)} measured steps ({diagnosis.measured_steps} this run).</p>")
    return "".join(parts)


def _recorded_sections(run: Run) -> list[tuple[str, str]]:
    """The sections of the capabilities whose records the run holds (``capabilities.RECORDED``);
    a damaged record is said on the page, not raised."""
    sections = []
    for result in RECORDED:
        try:
            found = result.read(run.path)
            if found is not None:
                sections.append((result.title, "".join(_block(block) for block in found.blocks())))
        except (LayerforgeError, KeyError, TypeError, ValueError, OSError) as error:
            where = run.path / result.folder / result.record
            sections.append((result.title, f"<p>{html.escape(str(where))} cannot be read: "
                                           f"{html.escape(str(error))}</p>"))
    return sections


def build_report(run_dir: str | Path, prepared=None) -> Path:
    """Write ``report.html`` into a run directory and return its path.

    Args:
        prepared: the run's prepared data when the caller has it (training); otherwise the
            held-out rows are rebuilt from the run's source and split.json when a section needs
            them (a note says so when they cannot be).
    """
    run = Run(run_dir)
    if run.manifest.ensemble:
        return build_ensemble_page(run_dir)
    part = "test" if run.manifest.rows.get("test") else "val"

    def held_out():
        if not run.manifest.rows.get(part):
            return None
        arrays = prepared.splits[part] if prepared is not None else run.held_out(part)
        return as_tensors(arrays, run.task, "cpu")

    history = run.history
    sections = [("Summary", _metrics_section(run.metrics) if run.metrics else "<p>the run did not finish</p>")]
    if history:
        curves = _image(charts.learning_curves(history, run.task.higher_is_better), "learning curves")
        curves += _image(charts.learning_rate(history), "learning rate")
        sections.append(("Learning curves", curves))
    with torch.no_grad():
        sections.append(("Results", _task_section(run, held_out)))
    sections.append(("Doctor", _doctor_section(run)))
    sections.append(("Data", _data_section(run.manifest)))
    sections.append(("Model", _model_section(run)))
    sections += _recorded_sections(run)
    sections.append(("Spec", _spec_section(run)))
    subtitle = f"{run.manifest.task} on {run.manifest.source} · {run.path.name} · report written " \
               f"{time.strftime('%Y-%m-%d %H:%M')}"
    path = run.path / REPORT
    atomic_write(path, _page(f"layerforge run: {run.spec.name}", subtitle, sections))
    if run.manifest.files is not None:  # a finished run lists its files: the page is one of them
        files = {**run.manifest.files, REPORT: sha256_file(path)}
        run.manifest.model_copy(update={"files": files}).write(run.path / MODEL)
    return path


def build_ensemble_page(run_dir: str | Path) -> Path:
    """report.html of an ensemble: its test metrics beside each member's on the same rows, and the
    task's results pictures drawn from the combined predictions."""
    from ..run.ensemble import on_shared_rows

    run = Run(run_dir)
    metrics, record = run.metrics, run.manifest.ensemble
    sections = [("Summary", _metrics_section({k: v for k, v in metrics.items() if k in ("test",)})
                 if metrics.get("test") else "<p>the members share no test rows: no score</p>")]
    members = metrics.get("members") or {}
    if members:
        names = [k for k, v in metrics["test"].items() if k != "rows" and isinstance(v, float)]
        rows = [["ensemble", *(metrics["test"].get(n) for n in names)]]
        rows += [[member, *(scores.get(n) for n in names)] for member, scores in members.items()]
        sections.append(("Members", f"<p>{len(members)} members ({html.escape(record.made_from)}), scored on the "
                                    f"{metrics['test'].get('rows', 0):.0f} test rows that every member held out</p>"
                                    + _table(["", *names], rows)))
        try:
            found = on_shared_rows(run.members, run.predictor)
            with torch.no_grad():
                blocks = run.task.report_blocks(found["model"], lambda: (found["index"], found["y"]),
                                                encoder=run.predictor.encoder, pictures={},
                                                target=run.manifest.target)
            sections.append(("Results", "".join(_block(block) for block in blocks)))
        except LayerforgeError as error:
            sections.append(("Results", f"<p>{html.escape(str(error))}</p>"))
    sections += _recorded_sections(run)  # what explain left in the ensemble's directory
    sections.append(("Spec of the first member", f"<pre>{html.escape((run.path / SPEC).read_text('utf-8'))}</pre>"))
    subtitle = f"ensemble of {len(record.members)} {run.manifest.task} runs on {run.manifest.source} · {run.path.name}"
    path = run.path / REPORT
    atomic_write(path, _page(f"layerforge ensemble: {run.spec.name}", subtitle, sections))
    files = {**(run.manifest.files or {}), REPORT: sha256_file(path)}
    run.manifest.model_copy(update={"files": files}).write(run.path / MODEL)
    return path


def build_comparison(run_dirs: list[str | Path], out: str | Path) -> Path:
    """A page with the runs' curves overlaid and their final metrics side by side."""
    runs = [Run(path) for path in run_dirs]
    named = [(run.path.name, run.history) for run in runs]
    keys = list(dict.fromkeys(k for run in runs for r in run.history for k in r
                              if k.endswith("loss") or k.startswith("val_")))
    curves = "".join(_image(charts.overlaid(named, key), key) for key in keys)
    rows = []
    for split in ("val", "test"):
        names = list(dict.fromkeys(k for run in runs for k in (run.metrics.get(split) or {})))
        rows += [[f"{split} {name}", *((run.metrics.get(split) or {}).get(name, float("nan")) for run in runs)]
                 for name in names]
    rows.append(["epochs", *(run.metrics.get("epochs", len(run.history)) for run in runs)])
    table = _table(["metric", *(run.path.name for run in runs)], rows)
    sections = [("Metrics", table), ("Curves", curves)]
    atomic_write(out, _page("layerforge: comparing runs", ", ".join(r.path.name for r in runs), sections))
    return Path(out)


def build_study_page(out: str | Path, title: str, subtitle: str, summary: list[list[Any]],
                     trials: tuple[list[str], list[list[Any]]], pictures: list[tuple[str, bytes]],
                     trials_title: str = "Trials") -> Path:
    """A search's page (or a cross-validation's): a summary table, the trials (or folds), and its
    charts (PNG bytes with their titles)."""
    sections = [("Summary", _table(["", ""], summary))]
    sections += [(name, _image(data, name)) for name, data in pictures]  # importances: a labelled chart
    sections.append((trials_title, _table(*trials)))
    atomic_write(out, _page(title, subtitle, sections))
    return Path(out)
