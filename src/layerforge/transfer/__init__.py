"""Transfer learning: start a network from another run, and train some of it slower or not at all.

* ``model.init_from: RUN`` loads every tensor of RUN's weights whose name and shape match the new
  network's. When the two networks name their layers differently (an autoencoder's encoder into
  a classifier), the feature extractors' tensors are matched in the order their layers run, as
  long as the shapes agree. A new output layer for other classes is simply not loaded.
  ``transfer.json`` in the new run lists what was loaded, skipped and newly initialised.
* ``model.freeze``: parameter name patterns (``blocks.0.*``) or ``features`` (all but the output
  layer) that do not learn; ``train.unfreeze_at: EPOCH`` lets them learn again from that epoch.
* ``train.discriminative_lr: F``: the layers nearest the output learn at the full rate, each
  earlier layer at F times the rate of the one after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError, DataError
from ..run.predictor import Predictor
from ..training.freezing import Freezer, feature_keys_of, frozen_names, layer_of, parameter_groups

__all__ = ["TRANSFER", "Freezer", "Loaded", "frozen_names", "init_from", "layer_of", "parameter_groups"]

TRANSFER = "transfer.json"


@dataclass
class Loaded:
    """What ``init_from`` did, tensor by tensor."""

    source: str
    loaded: list[dict] = field(default_factory=list)  # {"name", "from", "shape"}
    new: list[dict] = field(default_factory=list)  # {"name", "shape", "why"}
    skipped: list[dict] = field(default_factory=list)  # source tensors not used: {"name", "shape"}

    def to_json(self) -> dict:
        return {"source": self.source, "loaded": self.loaded, "new": self.new, "skipped": self.skipped}

    def summary(self) -> str:
        return (f"init_from {self.source}: loaded {len(self.loaded)} tensors, newly initialised {len(self.new)}, "
                f"skipped {len(self.skipped)} of the source")


def init_from(model: torch.nn.Module, run_dir: str | Path, classes: list | None = None) -> Loaded:
    """Load into ``model`` the matching tensors of the run in ``run_dir`` (see the module).
    When the source predicted other ``classes``, its output layer is never loaded: the new
    classes get a new one, whatever its shape.

    Raises:
        DataError: ``run_dir`` is not a finished run, or not one tensor fits ``model``.
    """
    try:
        predictor = Predictor.load(run_dir)
    except CheckpointError as error:
        raise DataError(f"model.init_from: {error}") from None
    source = predictor.model
    theirs, ours = source.state_dict(), model.state_dict()
    our_features, their_features = feature_keys_of(model), feature_keys_of(source)
    other_classes = classes is not None and predictor.manifest.classes != list(classes)
    head = set(ours) - set(our_features) if other_classes else set()
    mapping = {name: name for name, value in ours.items()
               if name in theirs and theirs[name].shape == value.shape and name not in head}
    if not any(name in mapping for name in our_features):  # the layers are named differently: go in order
        for mine, yours in zip(our_features, their_features):
            if ours[mine].shape != theirs[yours].shape:
                break
            mapping[mine] = yours
    done = Loaded(str(run_dir))
    with torch.no_grad():
        for name, value in ours.items():
            if name in mapping:
                value.copy_(theirs[mapping[name]].to(value.device, value.dtype))
                done.loaded.append({"name": name, "from": mapping[name], "shape": list(value.shape)})
            else:
                why = ("the output layer of other classes" if name in head else
                       f"shape {list(theirs[name].shape)} in the source" if name in theirs else "not in the source")
                done.new.append({"name": name, "shape": list(value.shape), "why": why})
    used = set(mapping.values())
    done.skipped = [{"name": name, "shape": list(value.shape)} for name, value in theirs.items() if name not in used]
    if not done.loaded:
        raise DataError(f"model.init_from: no tensor of {run_dir} fits this model (names and shapes differ); its "
                        f"layers: {', '.join(list(theirs)[:6])}{', ...' if len(theirs) > 6 else ''}")
    return done
