"""``layerforge runs``: list the runs in a directory with their final metrics."""

from __future__ import annotations

from pathlib import Path

from .common import RUNS_DIR, make_console


def runs(runs_dir: Path = RUNS_DIR) -> None:
    """List the runs in a directory with their final metrics."""
    from rich.table import Table

    from ..run.store import list_runs

    rows = list_runs(runs_dir)
    if not rows:
        make_console().print(f"no runs in {runs_dir}")
        return
    from ..tasks import TASKS

    apart = _set_apart(rows)
    table = Table(title=f"runs in {runs_dir}", title_justify="left")
    longest = max(len(row["run"]) for row in rows)
    table.add_column("run", no_wrap=True, min_width=longest)  # a run's name is what commands take: never cut
    for column in ("task", "epochs", "status", "val", "test", "doctor", *(["differs"] if apart else [])):
        table.add_column(column, overflow="fold")

    def headline(task, scores):
        key = TASKS[task].headline if task in TASKS else None
        if not isinstance(scores, dict) or key not in scores:
            return "-"
        return f"{key} {scores[key]:.4f}"

    for row in rows:
        metrics = row["metrics"]
        doctor = metrics.get("doctor") or {}
        verdict = "-" if not doctor else f"{doctor['findings']} ({doctor['worst']})" if doctor["findings"] else "healthy"
        table.add_row(row["run"], str(row["task"]), str(row["epochs"]), row["status"],
                      headline(row["task"], metrics.get("val")), headline(row["task"], metrics.get("test")), verdict,
                      *([apart.get(row["run"], "")] if apart else []))
    make_console().print(table)


def _set_apart(rows: list[dict]) -> dict[str, str]:
    """For runs that share a spec name: the spec keys whose values differ between them, with this
    run's value (``train.optimizer.lr=0.01``), so that they are told apart by more than their
    timestamps."""
    import yaml

    from ..spec.load import dotted

    specs, names = {}, {}
    for row in rows:
        try:
            spec = yaml.safe_load((Path(row["path"]) / "spec.yaml").read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(spec, dict):
            specs[row["run"]] = dotted(spec)
            names.setdefault(str(spec.get("name")), []).append(row["run"])
    found = {}
    for group in names.values():
        if len(group) < 2:
            continue
        keys = sorted({key for run in group for key in specs[run]} - {"name"})
        differing = [key for key in keys if len({repr(specs[run].get(key)) for run in group}) > 1]
        for run in group:
            found[run] = "\n".join(f"{key}={specs[run].get(key)}" for key in differing) or "same spec"
    return found

