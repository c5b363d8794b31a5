"""Weights and checkpoints as safetensors + JSON, written atomically and verified on load.

A checkpoint is ``last.safetensors`` (weights, optimizer tensors, RNG states, best weights) and
``trainer_state.json`` (epoch, step, optimizer and schedule settings, early-stopping state,
history, and the SHA-256 of the safetensors file). The JSON is written last, so a crash between
the two writes leaves a hash mismatch that is reported, never a silently mixed checkpoint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from ..errors import CheckpointError
from ..files import atomic_write

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
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise CheckpointError(
            f"{path} does not match its recorded checksum: it is corrupt or truncated "
            "(an interrupted write or a changed file); it was not used"
        )
    try:
        return _st_load(data)
    except Exception as error:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(f"{path} is not a valid safetensors file ({error}); it was not used") from None


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


def save_checkpoint(directory: str | Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write ``last.safetensors`` then ``trainer_state.json`` (with the weights' checksum)."""
    directory = Path(directory)
    digest = save_weights(directory / WEIGHTS, tensors)
    atomic_write(directory / STATE, json.dumps({**state, "format": FORMAT, "sha256": digest}, indent=1))


def load_checkpoint(directory: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read and verify a checkpoint written by ``save_checkpoint``."""
    directory = Path(directory)
    state_path = directory / STATE
    if not state_path.is_file():
        raise CheckpointError(f"no checkpoint in {directory} (missing {STATE})")
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{state_path} is corrupt ({error}); it was not used") from None
    if state.get("format") != FORMAT or "sha256" not in state:
        raise CheckpointError(f"{state_path} is not a layerforge checkpoint of format {FORMAT}")
    return load_weights(directory / WEIGHTS, state["sha256"]), state
