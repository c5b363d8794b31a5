"""``layerforge recommend``: each user's best items that the user did not have in training."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import DataError
from .common import training_stack, write_frames


def recommend(
    run: Path = typer.Argument(..., help="Run directory of a recommendation run."),
    user: list[str] = typer.Option([], "--user", help="A user to recommend for, as the data names them (repeat for several)."),
    users: Path | None = typer.Option(None, "--users", help="A text file of users, one per line (or a CSV/Parquet table with the run's user column)."),
    k: int = typer.Option(10, "--k", min=1, help="Items per user."),
    out: Path | None = typer.Option(None, "--out", help="Write the lists here (.csv or .parquet); default: standard output."),
) -> None:
    """Recommend each user's best items that the user did not have in training: the user, the
    rank, the item and its score (a predicted rating where the data has ratings)."""

    def call():
        training_stack()
        from ..run.directory import load_run

        predictor = load_run(run).predictor
        wanted = list(user) + (_users_of(users, predictor.encoder.state.user) if users is not None else [])
        if not wanted:
            raise DataError("name the users to recommend for: --user U (repeat for several) or --users FILE")
        return predictor.recommend(wanted, k)

    write_frames(call, out, "recommendations.csv")


def _users_of(path: Path, column: str) -> list[str]:
    """The users a file names: a table's user column, or a text file's lines."""
    if path.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq"):
        from ..data.tabular import read_table

        frame = read_table(path, text=[column])
        if column not in frame.columns:
            raise DataError(f"{path}: has no column '{column}' (the run's users); or give a text file of one user a line")
        return frame[column].astype(str).tolist()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot be read as text ({error})") from None
    return [line.strip() for line in lines if line.strip()]
