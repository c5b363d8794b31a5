"""Capabilities: what a command does with a finished run (export, explain, attack, the fairness
audit and its mitigation) or with a spec (cv, tune), in one shape.

A capability declares what it applies to (``Capability.applies``: why it does not apply to a run,
or None) and returns a typed ``Result``: the result writes and reads its own JSON (checked on
reading, so a damaged file is one error naming the file and the field) and gives ``blocks``:
tables, sentences and pictures that the console (``layerforge.cli``) and the report page draw
alike. The report iterates ``RECORDED``; nothing reads another capability's JSON by its keys.

A capability never rewrites a finished run in place: one that changes a run's answers (fairness
mitigation) makes a new version of the run (``layerforge.run.versions``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from typing_extensions import NotRequired, Self, TypedDict

from ..errors import CheckpointError, DataError
from ..figures import Block, Note, Picture, Table
from ..files import make_dir, read_json, unsealed, write_json


class Result(BaseModel):
    """What a capability returns and keeps in ``RUN/<folder>/<record>``."""

    model_config = ConfigDict(extra="forbid")

    title: ClassVar[str]  # its section in the report
    folder: ClassVar[str]  # its folder in a run directory
    record: ClassVar[str]  # its JSON file in that folder

    path: Path | None = Field(default=None, exclude=True)  # the folder it is written in
    checks: dict[str, Any] = {}  # the capability's checks of itself

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def blocks(self) -> list[Block]:
        """What the console and the report show of it."""
        raise NotImplementedError

    def warnings(self) -> list[str]:
        """What its failed checks mean, one sentence each (the console prints them as warnings)."""
        return []

    def write(self) -> Path:
        """Write the record into ``path`` (created if needed); returns the file."""
        if not self.path.is_dir():
            make_dir(self.path)
        write_json(self.path / self.record, self.to_json())
        return self.path / self.record

    @classmethod
    def read(cls, run_dir: str | Path) -> Self | None:
        """The record a run holds, or None when it holds none.

        Raises:
            CheckpointError: the file is corrupt or malformed (naming the file and the field).
        """
        return cls.read_in(Path(run_dir) / cls.folder)

    @classmethod
    def read_in(cls, folder: str | Path) -> Self | None:
        """The record in ``folder`` (a run's, or one written elsewhere), or None."""
        path = Path(folder) / cls.record
        if not path.is_file():
            return None
        raw = read_json(path)
        if not isinstance(raw, dict):
            raise CheckpointError(f"{path}: expected a mapping; it was not used")
        raw, _ = unsealed(raw, path)
        try:
            found = cls.model_validate(raw)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "(the whole file)"
            raise CheckpointError(f"{path}: {field}: {first['msg']} ({error.error_count()} problem(s)); "
                                  "it was not used") from None
        found.path = path.parent
        return found


# -- the fairness audit and its mitigation ---------------------------------------------------------

Rate = float | None


class GroupRates(TypedDict):
    rows: int
    accuracy: float
    selection_rate: float
    true_positive_rate: Rate
    false_positive_rate: Rate
    mean_probability: float
    observed_rate: float


class Disparity(TypedDict):
    value: Rate
    ci95: list[Rate]
    threshold: NotRequired[float]
    flagged: NotRequired[bool]


class Measured(TypedDict):
    """Accuracy, each group's rates, and the disparities, on one set of rows."""

    accuracy: float
    groups: dict[str, GroupRates]
    disparities: dict[str, Disparity]
    note: NotRequired[str]  # why there are no disparities


def _disparity_rows(measured: Measured) -> list[list]:
    return [[name, entry["value"], entry["ci95"][0], entry["ci95"][1], entry.get("threshold"),
             "FLAGGED" if entry.get("flagged") else ""] for name, entry in measured["disparities"].items()]


class FairnessAudit(Result):
    """Per sensitive column: its groups' rates and the disparities, with intervals and flags."""

    title: ClassVar[str] = "Fairness"
    folder: ClassVar[str] = "fairness"
    record: ClassVar[str] = "fairness.json"

    positive: int | str
    rows: int
    columns: dict[str, Measured] = {}

    def blocks(self) -> list[Block]:
        blocks: list[Block] = [Note(f"{self.rows} rows; favourable outcome: {self.positive}.")]
        for column, measured in self.columns.items():
            rows = [[group, m["rows"], m["accuracy"], m["selection_rate"], m["true_positive_rate"],
                     m["false_positive_rate"], m["mean_probability"], m["observed_rate"]]
                    for group, m in measured["groups"].items()]
            blocks.append(Table(["group", "rows", "accuracy", "selection rate", "TPR", "FPR", "mean probability",
                                 "observed rate"], rows, title=column))
            if "note" in measured:
                blocks.append(Note(measured["note"]))
            else:
                blocks.append(Table(["disparity", "value", "95% low", "95% high", "threshold", ""],
                                    _disparity_rows(measured)))
        return blocks


MEASURED_BY = {"demographic_parity": "demographic_parity_difference",
               "true_positive_rate_parity": "equalized_odds_difference",
               "equalized_odds": "equalized_odds_difference"}


class Mitigation(Result):
    """Per-group thresholds fitted for ``constraint``, and the test rows before and after them.
    It is kept in the new version of the run that decides by them (``version``), and names the
    run it was made from (``made_from``)."""

    title: ClassVar[str] = "Fairness mitigation"
    folder: ClassVar[str] = "fairness"
    record: ClassVar[str] = "mitigation.json"

    column: str
    constraint: Literal["demographic_parity", "true_positive_rate_parity", "equalized_odds"]
    positive: int | str
    fitted_on: str
    rate: float
    thresholds: dict[str, float]
    before: Measured
    after: Measured
    made_from: str | None = None
    version: str | None = None

    @property
    def version_dir(self) -> Path | None:
        """The new version of the run that decides by these thresholds."""
        return self.path.parent if self.path is not None else None

    def summary(self) -> str:
        """One line: the disparity the constraint targets, and accuracy, before and after."""
        name = MEASURED_BY[self.constraint]
        before, after = self.before["disparities"][name]["value"], self.after["disparities"][name]["value"]
        return (f"{name.replace('_', ' ')} {_number(before)} -> {_number(after)}; accuracy "
                f"{self.before['accuracy']:.4f} -> {self.after['accuracy']:.4f} on "
                f"{sum(g['rows'] for g in self.after['groups'].values())} test rows")

    def blocks(self) -> list[Block]:
        before, after = self.before, self.after
        rows = [[group, cut, before["groups"].get(group, {}).get("selection_rate"),
                 after["groups"].get(group, {}).get("selection_rate"),
                 before["groups"].get(group, {}).get("accuracy"), after["groups"].get(group, {}).get("accuracy")]
                for group, cut in self.thresholds.items()]
        disparities = [[name, entry["value"], after["disparities"][name]["value"],
                        "FLAGGED" if after["disparities"][name].get("flagged") else ""]
                       for name, entry in before["disparities"].items()]
        made = f" This version of the run was made from {self.made_from}, which decides as before." \
            if self.made_from else ""
        return [Note(f"Decides by per-group thresholds on '{self.column}' ({self.constraint}, fitted on "
                     f"{self.fitted_on}); favourable outcome: {self.positive}. {self.summary()}.{made}"),
                Table(["group", "threshold", "selection before", "selection after", "accuracy before",
                       "accuracy after"], rows, title=f"{self.column}: thresholds for {self.constraint}"),
                Table(["disparity", "before", "after", ""], disparities)]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


# -- explanations and robustness -------------------------------------------------------------------

class Explanation(Result):
    """Global importance of each input, and the explanation's checks of itself."""

    title: ClassVar[str] = "Explanations"
    folder: ClassVar[str] = "explain"
    record: ClassVar[str] = "explain.json"

    method: str
    rows: int
    importance: dict[str, float]
    permutation: dict[str, float] = {}

    def blocks(self) -> list[Block]:
        checks = self.checks
        said = [f"{self.method} on {self.rows} rows."]
        if "completeness_delta_median" in checks:
            said.append(f"Completeness: the attributions sum to the output's change from the baseline within "
                        f"{checks['completeness_delta_median']:.2%} (median; worst "
                        f"{checks['completeness_delta_max']:.2%}).")
        if "randomisation_rank_correlation" in checks:
            verdict = ("the explanation depends on what was learned." if checks.get("depends_on_weights") else
                       "too similar: it reflects the input more than the model. Do not trust it.")
            said.append(f"Model randomisation: rank correlation {checks['randomisation_rank_correlation']:.2f} "
                        f"with the same network given random weights; {verdict}")
        ranked = sorted(self.importance.items(), key=lambda kv: -kv[1])
        rows = [[name, value, self.permutation.get(name)] for name, value in ranked]
        header = ["input", "mean |attribution|"] + (["permutation importance"] if self.permutation else [])
        return [Note(" ".join(said)), Table(header, [row[:len(header)] for row in rows])]

    def warnings(self) -> list[str]:
        return _explanation_warnings(self.checks)


def _explanation_warnings(checks: dict[str, Any]) -> list[str]:
    said = []
    if checks.get("depends_on_weights") is False:
        said.append(f"the explanation barely depends on what the network learned (rank correlation "
                    f"{checks.get('randomisation_rank_correlation', float('nan')):.2f} with the same network given "
                    "random weights): it reflects the inputs more than the model; do not trust it")
    if checks.get("completeness_delta_max", 0) > 0.05:
        said.append(f"the attributions miss the output's change from the baseline by up to "
                    f"{checks['completeness_delta_max']:.1%}: they are approximate for some rows")
    return said


class Robustness(Result):
    """An attack's results: per epsilon the headline metric under FGSM and under the method."""

    title: ClassVar[str] = "Robustness"
    folder: ClassVar[str] = "robustness"
    record: ClassVar[str] = "attack.json"
    pictures: ClassVar[tuple[str, ...]] = ("attack.png", "attacked_examples.png")

    metric: str
    units: str
    method: str
    norm: str
    steps: int
    rows: int
    points: list[dict[str, float]] = []

    def blocks(self) -> list[Block]:
        methods = list(dict.fromkeys(["fgsm", self.method]))
        checks = self.checks
        said = [f"{self.rows} test rows; epsilon in {self.units}; {self.method} with {self.steps} steps, "
                f"{self.norm} norm."]
        if "stronger_than_fgsm" in checks:
            said.append("PGD was at least as strong as FGSM at every epsilon." if checks["stronger_than_fgsm"] else
                        f"PGD was weaker than FGSM at epsilon {checks.get('weaker_at')}: the attack is not reliable "
                        "there.")
        if checks.get("clean_at_chance"):
            said.append(f"Unattacked, {self.metric} is already {checks['clean_metric']:.3f}, about chance: there is "
                        "nothing for an attack to take, and whether gradients are masked cannot be told.")
        if "falls_to_chance" in checks:
            masked = (" (no sign of masked gradients)." if checks["falls_to_chance"] else
                      ": above chance, gradients may be masked.")
            said.append(f"At epsilon {checks['largest_eps']:g} {self.metric} falls to "
                        f"{checks['metric_at_largest_eps']:.3f}{masked}")
        blocks: list[Block] = [
            Note(" ".join(said)),
            Table(["epsilon", *(f"{self.metric} under {name}" for name in methods)],
                  [[point["eps"], *(point.get(name) for name in methods)] for point in self.points])]
        for name in self.pictures:
            if self.path is not None and (self.path / name).is_file():
                blocks.append(Picture(name, (self.path / name).read_bytes()))
        return blocks

    def warnings(self) -> list[str]:
        checks, said = self.checks, []
        if checks.get("stronger_than_fgsm") is False:
            said.append(f"PGD was weaker than FGSM at epsilon {checks.get('weaker_at')}: the attack did not converge "
                        "there, and its numbers flatter the model; try more --steps")
        if checks.get("falls_to_chance") is False:
            said.append(f"at the largest epsilon {self.metric} stays at {checks.get('metric_at_largest_eps', 0):.3f}, "
                        "above chance: the gradients may be masked, and the model may be weaker than it looks")
        return said


# -- export ----------------------------------------------------------------------------------------

class _Open(BaseModel):
    """A part of an export's proof: the fields it draws are checked; others it keeps as they are."""

    model_config = ConfigDict(extra="allow")


class Decoded(_Open):
    rows: Annotated[int, Field(ge=0)]
    differing: Annotated[int, Field(ge=0)]


class GraphProof(_Open):
    exporter: str
    bytes: Annotated[int, Field(ge=0)]
    max_rel_diff: float
    decoded: Decoded | None = None


class Measures(_Open):
    part: str
    rows: int
    pytorch: dict[str, float | None]
    onnx: dict[str, float | None]


class Int8Proof(_Open):
    kept: bool
    why: str | None = None
    kept_for: str | None = None
    size_ratio: float | None = None
    metrics: dict[str, float | None] | None = None


class Timing(_Open):
    p50_ms: float
    p99_ms: float
    rows_per_s: float


class ExportParity(Result):
    """The export's proof (``export/parity.json``): each graph's exporter, size and largest
    difference from PyTorch, the decoded answers through the whole road, metrics through ONNX
    Runtime, int8, and latency."""

    title: ClassVar[str] = "Export"
    folder: ClassVar[str] = "export"
    record: ClassVar[str] = "parity.json"

    model_config = ConfigDict(extra="allow")

    format: str
    graphs: dict[str, GraphProof] = {}
    metrics: Measures | None = None
    int8: Int8Proof | None = None
    latency: dict[str, dict[str, Timing]] | None = None
    members: dict[str, ExportParity] | None = None  # an ensemble: each member's own proof

    def _graph_rows(self, prefix: str = "") -> list[list]:
        rows = []
        for name, entry in self.graphs.items():
            decoded = entry.decoded
            agreed = f"{decoded.rows - decoded.differing}/{decoded.rows} identical" if decoded else "-"
            rows.append([f"{prefix}{name}.onnx", entry.exporter, f"{entry.bytes / 1024:.1f} KiB",
                         f"{entry.max_rel_diff:.1e}", agreed])
        for member, proof in (self.members or {}).items():
            rows += proof._graph_rows(f"{prefix}{member}/")
        return rows

    def blocks(self) -> list[Block]:
        graphs = self._graph_rows()
        blocks: list[Block] = [Table(["graph", "exporter", "size", "largest difference", "decoded predictions"],
                                     graphs)]
        int8, metrics = self.int8, self.metrics
        if metrics:
            names = [k for k in metrics.pytorch if k != "rows"]
            rows = [["PyTorch", *(metrics.pytorch[k] for k in names)],
                    ["ONNX float", *(metrics.onnx.get(k) for k in names)]]
            if int8 is not None and int8.metrics is not None:
                rows.append(["ONNX int8" + ("" if int8.kept else " (not kept)"), *(int8.metrics.get(k) for k in names)])
            blocks.append(Table(["model", *names], rows, title=f"{metrics.part} rows ({metrics.rows})"))
        rows = [[model, size, t.p50_ms, t.p99_ms, t.rows_per_s]
                for model, sizes in (self.latency or {}).items() for size, t in sizes.items()]
        if rows:
            blocks.append(Table(["model", "batch", "p50 ms", "p99 ms", "rows/s"], rows))
        if int8 is not None:
            kept_for = f"; kept for {int8.kept_for}" if int8.kept_for else ""
            size = f"{int8.size_ratio:.2f} of the float size" if int8.size_ratio is not None else "its size unknown"
            blocks.append(Note(f"int8 kept: {size}{kept_for}" if int8.kept else f"int8 not kept: {int8.why or ''}"))
        return blocks


# -- the registry ----------------------------------------------------------------------------------

def _attacked(run) -> str | None:
    task = run.task
    return None if task.attacks else \
        f"attacks measure classification and regression runs; this run does {run.manifest.task}"


def _explained(run) -> str | None:
    task = run.task
    return None if task.explains else \
        f"explanations are for classification, regression and detection runs; this run does {run.manifest.task}"


def _audited(run) -> str | None:
    return None if run.task.classes else \
        f"fairness metrics compare classifications; this run does {run.manifest.task}"


def _mitigated(run) -> str | None:
    if run.manifest.ensemble:
        return f"{run.path} is an ensemble: mitigate one of its members, or a single run"
    classes = run.task.classes
    if not classes or len(classes) != 2:
        return (f"--mitigate: per-group thresholds decide between two classes; this run does {run.manifest.task}"
                + (f" with {len(classes)} classes" if classes else ""))
    return None


def _exported(run) -> str | None:
    return run.manifest.runtime_problem()


@dataclass(frozen=True)
class Capability:
    """A command on a finished run: its result type, and why it does not apply to a run (None
    when it does)."""

    command: str
    result: type[Result]
    applies: Callable[[Any], str | None]  # why it does not apply to a run, or None

    def check(self, run) -> None:
        """Raises DataError saying why the capability does not apply to ``run``."""
        reason = self.applies(run)
        if reason is not None:
            raise DataError(reason)


CAPABILITIES: dict[str, Capability] = {
    "export": Capability("export", ExportParity, _exported),
    "explain": Capability("explain", Explanation, _explained),
    "fairness": Capability("fairness", FairnessAudit, _audited),
    "mitigate": Capability("fairness --mitigate", Mitigation, _mitigated),
    "attack": Capability("attack", Robustness, _attacked),
}

# what a run's report shows of the capabilities' records, in this order
RECORDED: tuple[type[Result], ...] = tuple(capability.result for capability in CAPABILITIES.values())

# folders whose records belong to one version of a run: a new version starts without them
RESULT_FOLDERS = frozenset(result.folder for result in RECORDED)


def get(name: str) -> Capability:
    return CAPABILITIES[name]


__all__ = ["CAPABILITIES", "RECORDED", "RESULT_FOLDERS", "Capability", "Disparity", "Explanation", "ExportParity",
           "FairnessAudit", "GroupRates", "Measured", "Mitigation", "Result", "Robustness", "get"]
