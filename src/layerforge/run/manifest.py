"""model.json: the typed, versioned manifest of a run. It holds what is needed to rebuild the
model and its preprocessing in a new process, with no access to the training data: the task and
its targets (classes, target scaling), what the model reads and the encoder's fitted state, the
model's family configuration and sizes, the split record, and what training measured on the way
(an anomaly threshold, the judge of a GAN).

Format 2 is written; format 1 (written before the manifest was typed) is migrated on reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SerializeAsAny, ValidationError, field_serializer

from ..data.kinds import State, state_for
from ..data.kinds.legacy import migrate_format_1
from ..errors import CheckpointError
from ..files import SEAL, read_json, sealed, unsealed, write_json
from ..models import config_for
from ..models.configs import FamilyConfig
from ..models.inputs import Inputs
from .decisions import GroupThresholds
from .store import METRICS, PARTIAL

FORMAT = "layerforge.model/2"
FORMAT_1 = "layerforge.model/1"
JUDGE_WIDEST = 4096  # the judge of a GAN is a small MLP; wider layers in model.json are not ours


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetScaling(_Record):
    mean: list[float]
    std: list[float]


class ModelRecord(_Record):
    """The network: its family configuration, head size, classes and parameter count."""

    spec: Annotated[SerializeAsAny[FamilyConfig], BeforeValidator(config_for)]
    output_size: int
    num_classes: int = 0
    parameters: int

    @field_serializer("spec", mode="wrap")
    def _network_only(self, spec, handler):
        """The network's options; how training started (init_from, freeze) is in spec.yaml."""
        return {key: value for key, value in handler(spec).items() if key not in ("init_from", "freeze")}


class SplitRecord(_Record):
    """Which rows went where is in ``file``; the source's fingerprint notices changed data."""

    file: str
    fingerprint: str
    plan: dict[str, Any]


class LabelsRecord(_Record):
    """A multi-label run's labels: each label's threshold (None: 0.5) and the separator of sets."""

    thresholds: list[Annotated[float, Field(ge=0, le=1)]] | None = None
    separator: str = "|"


class TargetRecord(_Record):
    """One target of a multi-target run: its column, its task and what that task keeps, and its
    weight in the loss."""

    name: str
    task: Literal["classification", "regression"]
    weight: float = 1.0
    classes: list[int | str] | None = None
    target_scaling: TargetScaling | None = None
    temperature: float | None = None


class AnomalyRecord(_Record):
    threshold: float
    quantile: float
    classes: list[int | str]


class JudgeRecord(_Record):
    """The classifier that judges a GAN's samples (evaluator.safetensors)."""

    layers: list[Annotated[int, Field(ge=1, le=JUDGE_WIDEST)]] = Field(max_length=8)
    epochs: int
    test_accuracy: float | None
    trained_on: str


class EnsembleRecord(_Record):
    """An ensemble's members: run directories inside it, and what made them."""

    members: list[Annotated[str, Field(pattern=r"^members/[A-Za-z0-9._-]+$")]] = Field(min_length=2)
    made_from: Literal["cross-validation", "seeds", "runs"]


class VersionRecord(_Record):
    """This run is a new version of the run ``of`` (a directory beside it): what changed, and
    the digests of what that run answered with when this version was made."""

    of: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")]
    change: str
    model_sha256: str | None
    weights_sha256: str | None


class Manifest(_Record):
    format: Literal["layerforge.model/2"] = FORMAT
    task: str
    target: str | list[str] | None
    classes: list[int | str] | None = None
    target_scaling: TargetScaling | None = None
    temperature: Annotated[float, Field(gt=0)] | None = None  # classification calibrated on validation rows
    inputs: Inputs
    features: list[str] | None = None
    preprocessing: Annotated[SerializeAsAny[State], BeforeValidator(state_for)]
    rows: dict[str, int]
    source: str
    split: SplitRecord | None = None
    held_out: bool = False  # heldout.safetensors keeps the encoded validation and test rows
    model: ModelRecord
    anomaly_classes: list[int | str] | None = None
    anomaly: AnomalyRecord | None = None
    labels: LabelsRecord | None = None  # multi-label runs
    targets: list[TargetRecord] | None = None  # multi-target runs
    evaluator: JudgeRecord | None = None
    baseline: dict[str, dict[str, float | None]] | None = None
    ensemble: EnsembleRecord | None = None  # the run combines these members' predictions
    decision: GroupThresholds | None = None  # per-group thresholds (layerforge fairness --mitigate)
    version_of: VersionRecord | None = None  # made from another run by a change to its answers
    # the spec the run trains (but for train.epochs, which a resumed run may change)
    spec_sha256: str | None = None
    # SHA-256 of every file the run wrote, listed when it ends and checked whenever one is read
    files: dict[str, Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] | None = None

    @field_serializer("inputs")
    def _sizes_only(self, inputs: Inputs) -> dict:
        return inputs.describe()

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def runtime_problem(self) -> str | None:
        """Why the torch-free runtime (ONNX export, the HTTP service) cannot answer for this
        run as ``predict`` does, or None when it can."""
        return self.model.spec.runtime_problem()

    def write(self, path: Path) -> None:
        write_json(path, sealed(self.to_json()))


def spec_digest(spec) -> str:
    """SHA-256 of what a spec sets: its keys whose values differ from their defaults, but for
    ``train.epochs`` (what a resumed run may change). A later version of layerforge that adds a
    key with a default leaves the digest of an earlier spec as it was."""
    import hashlib
    import json

    from ..spec.load import changed

    keys = {key: value for key, value in changed(spec).items() if key != "train.epochs"}
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def spec_matches(spec, digest: str | None, written: dict | None = None) -> bool:
    """Whether a run's recorded ``digest`` is ``spec``'s: ``spec_digest``, or the digest earlier
    versions wrote (of the whole resolved spec) over the keys the run's own spec.yaml has
    (``written``), so that runs from before a key was added still resume."""
    import hashlib
    import json

    if digest is None or digest == spec_digest(spec):
        return True
    if not isinstance(written, dict):
        return False

    def only(values: dict, kept: dict) -> dict:
        return {key: only(value, kept[key]) if isinstance(value, dict) and isinstance(kept[key], dict) else value
                for key, value in values.items() if key in kept}

    dumped = only(spec.model_dump(mode="json"), written)
    dumped.get("train", {}).pop("epochs", None)
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode("utf-8")).hexdigest() == digest


def read_manifest(path: Path) -> Manifest:
    """Read and validate model.json (format 2, or format 1 migrated).

    Raises:
        CheckpointError: the file is missing, corrupt, of an unknown format, or invalid; the
            message names the file and the field.
    """
    raw = read_json(path)
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} is not a layerforge model file: expected a mapping")
    if raw.get("format") == FORMAT_1:
        raw = migrate_format_1(raw, _spec_data(path.parent))
    elif raw.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} file (format: {raw.get('format')!r})")
    else:
        raw, had_seal = unsealed(raw, path)
        for field, present in ((SEAL, had_seal), ("files", raw.get("files") is not None)):
            if not present and _finished(path.parent):
                raise CheckpointError(f"{path}: {field}: missing; a finished run writes it, so this file was edited "
                                      "and the run's files cannot be trusted")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"{path}: {where}: {first['msg']} ({error.error_count()} problem(s))") from None


def _finished(run_dir: Path) -> bool:
    """Whether training ended in ``run_dir``: metrics written, the partial marker gone."""
    return (run_dir / METRICS).is_file() and not (run_dir / PARTIAL).exists()


def _spec_data(run_dir: Path) -> dict:
    """The data section of the run's spec.yaml (format 1 kept some choices only there)."""
    try:
        spec = yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8"))
        return spec.get("data") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return {}


