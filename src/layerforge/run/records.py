"""The other files of a run directory, typed: what metrics.json, diagnosis.json and split.json
hold. Every file read from a run is checked against these (and against its checksum in
model.json), so a damaged or edited file is one clear error naming the file and the field."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Severity = Literal["info", "warning", "error"]
Count = Annotated[int, Field(ge=0, le=10**9)]


def _inside(value: str) -> str:
    """A path relative to the run directory that stays inside it."""
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or "\\" in value or not value:
        raise ValueError(f"expected a path inside the run directory, got {value!r}")
    return value


RunPath = Annotated[str, AfterValidator(_inside)]


class Finding(BaseModel):
    """One verdict of the doctor, or of a GAN's watch."""

    model_config = ConfigDict(extra="allow")

    kind: str
    severity: Severity
    message: str
    fix: str = ""
    evidence: dict[str, Any] = {}


class DoctorSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worst: Severity | None
    findings: Count


class Metrics(BaseModel):
    """metrics.json: held-out metrics and what training measured."""

    model_config = ConfigDict(extra="forbid")

    val: dict[str, float | None] | None = None
    test: dict[str, float | None] | None = None
    epochs: Count
    best_epoch: Count
    stopped_early: bool
    pictures: dict[str, RunPath] = {}
    findings: list[Finding] = []
    doctor: DoctorSummary | None = None
    rollbacks: Count | None = None
    members: dict[str, dict[str, float | None]] | None = None  # an ensemble: each member on the same rows
    ensemble: dict[str, Any] | None = None
    compile_seconds: float | None = None  # train.compile: the first epoch's time beyond a usual epoch's


class Diagnosis(BaseModel):
    """diagnosis.json: the findings, most severe first, and why a failed run failed."""

    model_config = ConfigDict(extra="forbid")

    worst: Severity | None
    findings: list[Finding]
    failure: str | None = None
    measured_steps: Count = 0
    layers: list[str] = []
    activations: list[str] = []


class SplitFile(BaseModel):
    """split.json: the rows of each part, as [start, stop) ranges, and the source's fingerprint."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["layerforge.split/1"]
    source: str
    rows: Count
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    plan: dict[str, Any]
    parts: dict[Literal["train", "val", "test"], list[tuple[Count, Count]]]
