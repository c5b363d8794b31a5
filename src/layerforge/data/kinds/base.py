"""What a data kind is: it loads rows once (a ``Source``), says how they may be split, and fits
an ``Encoder`` on the training rows that turns any rows into model inputs, the same way at
training and at prediction time. An encoder's fitted state is plain JSON (a pydantic model) that
model.json keeps, so a new process rebuilds it without the training data.

Kind modules import pandas (and the readers) inside their methods: a spec names its data kind,
and validating a spec must not wait for pandas.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from ... import tasks
from ...codecs import codec_for
from ...errors import DataError
from ...models.inputs import Inputs
from ..splits import ExpandingWindow, GroupedKFold, KFold, plan_for

# encoded rows: the model's inputs (``(x,)`` or ``(x, lengths)``) and their targets (raw labels
# as a pandas Series, numeric targets as an array, or None)
Encoded = tuple[tuple[np.ndarray, ...], Any]


@dataclass
class Source:
    """Rows loaded once from a data spec; split plans divide ``rows`` row positions.

    Attributes:
        label: the file or built-in dataset, for messages and model.json.
        rows: how many rows (series, images, texts, time steps or characters).
        payload: the rows themselves, as the kind holds them.
        fingerprint: SHA-256 of the loaded content: a changed source is noticed.
        target: the target column, when the rows have one.
        labels: the raw target value of every row (a pandas Series), or None.
        fixed: parts the source fixes itself (an official test split), as row positions.
        facts: what else the kind knows about its rows (image shape, season, columns).
        streamed: the rows stay in their file (``payload`` reads them a chunk at a time) and
            only the labels are in memory: a table larger than memory (``data.streaming``).
    """

    label: str
    rows: int
    payload: Any
    fingerprint: str
    target: str | None = None
    labels: Any = None
    fixed: dict[str, np.ndarray] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    streamed: bool = False


@dataclass(frozen=True)
class Perturbation:
    """How an adversarial attack may move one encoded row, in the units users reason in.

    Attributes:
        units: what epsilon is measured in ('pixels in [0, 1]', 'standardised values').
        scale: encoded units per user unit, broadcastable to one row's shape; 0 where the input
            must not move (one-hot and missing-indicator columns).
        low, high: the encoded values' bounds (a pixel stays in [0, 1]), or None.
    """

    units: str
    scale: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None


class State(BaseModel):
    """An encoder's fitted state, as model.json keeps it (``preprocessing``)."""

    model_config = ConfigDict(extra="forbid")

    named_columns: ClassVar[bool] = False  # rows are tables of named columns (audits by column need them)
    kind: str

    def attribution_groups(self) -> list[tuple[str, list[int]]] | None:
        """The input columns users know, each with the encoded features that came from it (a
        table's one-hot and missing-indicator columns belong to their source column), or None
        when attributions keep the encoded shape (steps, pixels)."""
        return None

    def perturbation(self) -> Perturbation | None:
        """How an attack may move this data's encoded rows, or None when they are not numbers
        an attack can move (token ids)."""
        return None

    def reads_files(self) -> str | None:
        """What a row names that is read from this machine's files (a table's picture paths), or
        None: an HTTP request must not make the service read its files."""
        return None

    def hears(self) -> bool:
        """Whether a row is a sound clip (so the service also takes a sound file as the body)."""
        return False

    def request_row(self, title: str) -> Any:
        """The type of one row of an HTTP prediction request (pydantic validates requests with it
        and the service's OpenAPI schema shows it), or None when rows are not what the data's
        models read (a corpus). ``title`` names the schema."""
        return None


class Encoder(ABC):
    """Fitted on the training rows of one kind of data; turns rows into model inputs.

    Args:
        state: the fitted state (from ``Kind.fit`` or a run's model.json).
        target: the target column's name, when there is one.
    """

    schema = None  # the columns of a table as they were typed (``data.columns.Column``), where they have types

    def __init__(self, state: State, target: str | None = None):
        self.state, self.target = state, target
        self._codec = None

    @property
    def codec(self):
        """The codec of this state (``layerforge.codecs``): what encodes new rows, here and in
        the torch-free runtime alike."""
        if self._codec is None:
            self._codec = codec_for(self.state.model_dump(mode="json"))
        return self._codec

    @property
    @abstractmethod
    def inputs(self) -> Inputs:
        """What one encoded row holds."""

    @property
    def features(self) -> list[str] | None:
        """The names of the raw input columns, when the data has named columns."""
        return None

    @property
    def constants(self) -> dict[str, np.ndarray]:
        """What the training data holds that a network may read besides each row (each user's
        training items, for a network of users' histories), by name; the network built for a
        run is handed them (``Network.hold``)."""
        return {}

    @abstractmethod
    def encode(self, source: Source, parts: dict[str, np.ndarray]) -> dict[str, Encoded]:
        """Inputs and targets of the rows of each part of ``source``."""

    def encode_new(self, data, *, unknown: str | None = None, ignore_extra: bool = False) -> Encoded:
        """Inputs (and raw labels as a pandas Series, when ``data`` holds them) for new rows at
        prediction time, by the codec.

        Raises:
            DataError: rows the model cannot read, named by column, row or file.
        """
        inputs, labels = self.codec.encode(data, unknown=unknown, ignore_extra=ignore_extra, target=self.target)
        return inputs, _labels(labels, self.target)

    def pieces(self, data) -> Iterator:
        """New rows in pieces that each fit in memory, for ``encode_new`` one at a time (a large
        file predicted a piece at a time), as the codec reads them."""
        yield from self.codec.pieces(data)

    def missing_labels(self) -> str:
        """What to add to new data so that it can be evaluated."""
        return "evaluation data needs labels: an array 'y' in the .npz file"

    def unscale(self, rows: np.ndarray):
        """Rows in model space back to the data's own scale (here: states with a per-channel
        ``mean`` and ``std``, as sequences and images have; tables and series override it)."""
        shape = (1, -1) + (1,) * (rows.ndim - 2)
        return rows * np.asarray(self.state.std).reshape(shape) + np.asarray(self.state.mean).reshape(shape)

    def pictures(self, rows: np.ndarray) -> np.ndarray | None:
        """(N, C, H, W) images in the data's scale, or None when the rows are not pictures."""
        return None

    def token_names(self, ids: np.ndarray) -> list[str] | None:
        """The tokens these ids stand for, or None when the rows are not token ids."""
        return None

    def unit_weights(self) -> np.ndarray | None:
        """Per-input weights that put errors in the data's own units when all inputs share one
        (the pixels of a table whose rows are images); None to keep model space."""
        return None

    def baseline(self, source: Source, test: np.ndarray) -> dict[str, dict[str, float]]:
        """Scores of a simple method on the test rows, to judge the model against (none here;
        forecasts have the seasonal-naive forecast)."""
        return {}


def _labels(labels, target: str | None):
    """Labels from a codec as a pandas Series (what tasks encode targets from), or None."""
    if labels is None:
        return None
    import pandas as pd

    if isinstance(labels, (pd.Series, pd.DataFrame)) or (isinstance(labels, np.ndarray) and labels.ndim > 1):
        return labels  # (a picture's mask of classes stays an array)
    return pd.DataFrame(labels) if isinstance(labels, dict) else pd.Series(labels, name=target)


class Kind(ABC):
    """A kind of data: table, sequence, image, text, corpus or forecast.

    Class attributes:
        name: the kind's name (``data.kind``).
        reads: the input kind its encoder gives models (see ``Inputs``).
        targets: what its rows provide to learn: 'labels' (a value per row from a target
            column, when there is one), 'future' (a series' next steps) or 'next_tokens'. It
            serves the tasks whose ``trains_on`` matches.
        state: the pydantic class of its encoder's state.
        several_targets: whether ``data.target`` may list several columns (multi-target).
    """

    name: ClassVar[str]
    reads: ClassVar[str]
    targets: ClassVar[str] = "labels"
    state: ClassVar[type[State]]
    several_targets: ClassVar[bool] = False

    @property
    def reads_table(self) -> bool:
        """Whether its encoder gives models table rows (numbers, one-hot categories)."""
        return self.reads == "table"

    @property
    def reads_pairs(self) -> bool:
        """Whether its encoder gives models text pairs (a source to answer with a target text)."""
        return self.reads == "pairs"

    @property
    def reads_frames(self) -> bool:
        """Whether its encoder gives models a clip's frames to answer one by one (transcription)."""
        return self.reads == "frames"

    @property
    def reads_images(self) -> bool:
        """Whether its encoder gives models images (C, H, W)."""
        return self.reads == "image"

    @property
    def tasks(self) -> list[str]:
        """The registered tasks this kind of data serves; the first is the default."""
        return [name for name, task in tasks.TASKS.items() if task.trains_on == self.targets]

    @abstractmethod
    def load(self, data_spec, *, target_required: bool = True) -> Source:
        """Read the rows a data spec names (once).

        Raises:
            DataError: the file cannot be read, or columns are missing or of the wrong type.
        """

    def from_frame(self, data_spec, frame, source: str, *, target_required: bool = True) -> Source:
        """The rows of a DataFrame given in memory (``lf.train(spec, data=frame)``).

        Raises:
            DataError: this kind does not read rows from a DataFrame.
        """
        raise DataError(f"rows given in memory are read as a table; {self.name} data comes from files "
                        "(data.path) or a built-in data set")

    def for_loss(self, data_spec, loss: str):
        """The data section as a run trained by the loss named ``loss`` reads it: by default,
        as it is."""
        return data_spec

    def default_task(self, source: Source) -> str:
        return self.tasks[0]

    def plan(self, data_spec, source: Source, seed: int, stratify: bool):
        """How this kind's rows are split by default (see ``layerforge.data.splits``);
        ``stratify`` when the task's targets are classes."""
        return plan_for(data_spec.split, seed, stratify)

    def cv_plan(self, data_spec, source: Source, seed: int, stratify: bool, folds: int, fold: int, deal: int):
        """Fold ``fold`` of ``folds`` for cross-validation: k-fold over the rows outside the test
        part (the rows a plain run of ``seed`` tests on), stratified when ``stratify``, grouped
        when ``data.groups`` names a column; ``deal`` deals the folds (one per repeat)."""
        split = data_spec.split
        if data_spec.groups is not None:
            if "groups" not in source.facts:
                raise DataError(f"data.groups: is for tables; {self.name} data has no group column")
            return GroupedKFold(folds, fold, seed, split.test, deal=deal, groups=tuple(source.facts["groups"]))
        if not split.shuffle:
            test_rows = int(round(source.rows * split.test)) if "test" not in source.fixed else 0
            return ExpandingWindow(folds, fold, test_rows)
        return KFold(folds, fold, seed, split.test, stratify=stratify and split.stratify, deal=deal)

    def raw_rows(self, source: Source, positions: np.ndarray):
        """The rows at ``positions`` as a user passes them to predict (a table without its
        target column, a list of series or texts, an array of images), or None when the data's
        rows are not answered one by one. Export parity runs every door's road on them."""
        if source.streamed:
            order = np.sort(positions)
            source, positions = source.payload.take(order), np.arange(len(order))
        payload = source.payload
        if hasattr(payload, "iloc"):
            frame = payload.iloc[positions]
            targets = source.target if isinstance(source.target, list) else [source.target]
            return frame.drop(columns=[name for name in targets if name in frame.columns])
        if isinstance(payload, list):
            return [payload[i] for i in positions]
        return np.asarray(payload)[positions]

    @abstractmethod
    def fit(self, source: Source, train: np.ndarray, data_spec) -> Encoder:
        """An encoder fitted on the training rows ``train`` of ``source``."""

    @abstractmethod
    def encoder(self, state: State, target: str | None) -> Encoder:
        """The encoder a saved state describes."""
