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

    table = Table(title=f"runs in {runs_dir}", title_justify="left")
    for column in ("run", "task", "epochs", "status", "val", "test", "doctor"):
        table.add_column(column)

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
                      headline(row["task"], metrics.get("val")), headline(row["task"], metrics.get("test")), verdict)
    make_console().print(table)

