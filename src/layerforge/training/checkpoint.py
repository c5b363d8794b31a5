"""Weights and checkpoints as safetensors + JSON, written atomically and verified on load.

A checkpoint is a directory ``checkpoints/epoch-000007/`` (or, taken during epoch 8 of rows
that stream from their files, ``epoch-000007.step-000000120/``) holding ``last.safetensors``
(weights, optimizer tensors, RNG states, best weights) and ``trainer_state.json`` (epoch,
optimizer and schedule settings, early-stopping state, history, and the SHA-256 of the
safetensors file). It is written under a temporary name and renamed into place, and the previous
checkpoint is removed only after that: a crash at any instant leaves at least one complete,
verifiable checkpoint (or none before the first).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from ..errors import CheckpointError
from ..files import SEAL, atomic_write, make_dir, remove, rename, sealed, unsealed

WEIGHTS = "last.safetensors"
STATE = "trainer_state.json"
FORMAT = 1


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}


def save_weights(path: str | Path, state_dict: dict[str, torch.Tensor], metadata: dict | None = None) -> str:
    """Save tensors atomically as safetensors; returns the file's SHA-256."""
    data = _st_save(_contiguous(state_dict), metadata={k: str(v) for k, v in (metadata or {}).items()})
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: str | Path, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a missing, truncated or altered file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    data = path.read_bytes()
    matches = expected_sha256 is None or hashlib.sha256(data).hexdigest() == expected_sha256
    try:
        tensors = _st_load(data)
    except Exception as error:  # safetensors raises its own error types for damaged headers
        damaged = "" if matches else " and does not match its recorded checksum: it is corrupt or truncated"
        raise CheckpointError(f"{path} is not a valid safetensors file{damaged} ({error}); it was not used") from None
    if not matches:
        raise CheckpointError(
            f"{path} does not match its recorded checksum: it is corrupt or truncated "
            "(an interrupted write or a changed file); it was not used"
        )
    return tensors


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def split_optimizer_state(state_dict: dict, prefix: str = "optimizer") -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state as (tensors for safetensors, named ``prefix.index.key``; the rest as JSON)."""
    tensors, scalars = {}, {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = _jsonable(value)
    groups = [{k: _jsonable(v) for k, v in group.items()} for group in state_dict["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def join_optimizer_state(tensors: dict[str, torch.Tensor], saved: dict, prefix: str = "optimizer") -> dict:
    """Rebuild an optimizer state dict from ``split_optimizer_state``'s two parts."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(f"{prefix}."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    for index, entries in saved["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for group in saved["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


Number = Annotated[float, Field(allow_inf_nan=False)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScheduleState(_Part):
    scale: Number = Field(gt=0)
    best: Number | None
    bad_epochs: int = Field(ge=0)
    checked: Annotated[int, Field(ge=1)] | None = None  # the epoch the plateau was last checked at


class EarlyStoppingState(_Part):
    best: Number | None
    best_epoch: int = Field(ge=0)
    wait: int = Field(ge=0)


class RollbackRecord(_Part):
    epoch: int = Field(ge=1)
    step: int = Field(ge=1)
    reason: str
    restored_epoch: int = Field(ge=0)
    lr_before: Number
    lr_after: Number


class PositionRecord(_Part):
    """How far into the epoch after ``epoch`` a checkpoint taken mid-epoch is: the steps done,
    and their losses and rows (the epoch's record needs them)."""

    step: int = Field(ge=1)
    losses: list[Number | list[Number]]
    sizes: list[Annotated[int, Field(ge=1)]]

    @field_validator("sizes")
    @classmethod
    def _one_per_step(cls, sizes, info):
        if len(sizes) != info.data.get("step") or len(info.data.get("losses", [])) != len(sizes):
            raise ValueError("needs a loss and a row count for each step done")
        return sizes


class LossScaleState(_Part):
    """fp16's loss scaler: its scale and the steps since it last changed."""

    scale: Number = Field(gt=0)
    growth_tracker: int = Field(ge=0)


class OptimizerState(_Part):
    """One optimizer's JSON part (its tensors are in the safetensors file): parameter groups,
    checked against the optimizer the run builds when it resumes, and per-parameter numbers."""

    model_config = ConfigDict(extra="forbid")
    param_groups: list[dict[str, Any]]
    scalars: dict[str, dict[str, float | int | bool | None]]


class CheckpointState(BaseModel):
    """trainer_state.json: what a checkpoint holds besides tensors (each optimizer's part, under
    its name, as an extra field)."""

    model_config = ConfigDict(extra="allow")

    format: int
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    epoch: int = Field(ge=0, le=10_000_000)
    schedule: ScheduleState
    early_stopping: EarlyStoppingState | None = None
    stopped_early: bool = False
    rollbacks: list[RollbackRecord] = []
    history: list[dict[str, Any]]
    position: PositionRecord | None = None
    loss_scale: LossScaleState | None = None

    @field_validator("history")
    @classmethod
    def _epochs_in_order(cls, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for number, record in enumerate(history, 1):
            if record.get("epoch") != number:
                raise ValueError(f"record {number} is not epoch {number}")
            for key, value in record.items():
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise ValueError(f"epoch {number}: {key} is {value!r}, not a number")
        return history

    @staticmethod
    def optimizer_part(state: dict, part: str) -> dict:
        """The JSON part of optimizer ``part`` in a checkpoint's state, checked.

        Raises:
            CheckpointError: naming the field.
        """
        try:
            return OptimizerState.model_validate(state.get(part)).model_dump()
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in (part, *first["loc"]))
            raise CheckpointError(f"{STATE}: {field}: {first['msg']}; it was not used") from None


def _checkpoint_name(epoch: int, step: int = 0) -> str:
    """``epoch-000007`` after 7 epochs; ``epoch-000007.step-000000120`` 120 steps into the next."""
    return f"epoch-{epoch:06d}" + (f".step-{step:09d}" if step else "")


def _order(name: str) -> tuple[int, int] | None:
    """(epochs, steps) a checkpoint directory's name stands for, or None for any other name."""
    epoch, _, step = name.removeprefix("epoch-").partition(".step-")
    if not name.startswith("epoch-") or not epoch.isdigit() or (step and not step.isdigit()):
        return None
    return int(epoch), int(step or 0)


def checkpoint_dirs(directory: str | Path) -> list[Path]:
    """The complete checkpoints in ``directory``, newest first (a directory only gets its final
    name once complete)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(order, p) for p in directory.iterdir() if p.is_dir() and (order := _order(p.name)) is not None]
    return [p for _, p in sorted(found, key=lambda pair: pair[0], reverse=True)]


def save_checkpoint(directory: str | Path, tensors: dict[str, torch.Tensor], state: dict) -> Path:
    """Write a checkpoint of epoch ``state["epoch"]`` beside the previous one, then remove the
    older ones. Returns its directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / _checkpoint_name(state["epoch"], (state.get("position") or {}).get("step", 0))
    building = directory / f".{final.name}.tmp"
    remove(building)  # what a crash may have left
    make_dir(building)
    digest = save_weights(building / WEIGHTS, tensors)
    # one line: the C encoder (an indented file takes the pure-Python one, 3x slower on a long history)
    atomic_write(building / STATE, json.dumps(sealed({**state, "format": FORMAT, "sha256": digest})))
    if final.exists():
        remove(final)
    rename(building, final)
    for older in checkpoint_dirs(directory)[1:]:
        remove(older)
    return final


def load_checkpoint(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify the newest checkpoint written by ``save_checkpoint``.

    Raises:
        CheckpointError: there is none, or it is corrupt, truncated or malformed (the message
            names the file and field); it is not used.
    """
    directory = Path(directory)
    found = checkpoint_dirs(directory)
    where = found[0] if found else directory  # checkpoints of earlier versions sit in the directory itself
    state_path = where / STATE
    if not state_path.is_file():
        raise CheckpointError(f"no checkpoint in {directory} (missing {STATE})")
    try:
        raw = json.loads(state_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise CheckpointError(f"{state_path} is corrupt ({error}); it was not used") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{state_path} is not a layerforge checkpoint of format {FORMAT}")
    raw, had_seal = unsealed(raw, state_path)
    if found and not had_seal:  # only checkpoints of the earlier layout, in the directory itself, have none
        raise CheckpointError(f"{state_path}: {SEAL} is missing, so the file cannot be trusted; it was not used")
    try:
        state = CheckpointState.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise CheckpointError(f"{state_path}: {field}: {first['msg']}; it was not used") from None
    if len(state.history) != state.epoch:
        raise CheckpointError(f"{state_path}: epoch {state.epoch} but {len(state.history)} epochs of history; "
                              "it was not used")
    return load_weights(where / WEIGHTS, state.sha256), raw
