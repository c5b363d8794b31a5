"""A CSV, TSV or Parquet file read a piece at a time, for tables larger than memory
(``data.streaming``): its columns and row count without reading its rows, one column, chunks of
rows with their positions, chosen rows, and whether ``data.streaming: auto`` streams it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError
from ..memory import available_memory

MEMORY_SHARE = 0.25  # data.streaming: auto streams a table whose values would fill more of the free memory
CHUNK_BYTES = 8 << 20  # data.stream.chunk_rows: auto reads about this many bytes of values at a time
PARQUET = (".parquet", ".pq")
READ_BYTES = 1 << 22  # fingerprint reads the file this much at a time


def check_fits(size: int, source: str) -> None:
    """Refuse to read ``source`` into memory when its values (``size`` bytes) exceed what is free.

    Raises:
        DataError: naming the sizes and pointing to ``data.streaming: true``.
    """
    free = available_memory()
    if size > free:
        raise DataError(f"{source}: does not fit in memory (about {size / 2**20:,.0f} MB of values, "
                        f"{free / 2**20:,.0f} MB free); stream it from the file instead (data.streaming: true)")


def too_large(size: int) -> bool:
    """Whether ``data.streaming: auto`` streams data whose values take ``size`` bytes: more than
    ``MEMORY_SHARE`` of the memory still free."""
    return size > MEMORY_SHARE * available_memory()


class TableFile:
    """A CSV, TSV or Parquet file read a piece at a time.

    Pieces (``units``) are what readers can start at independently: a Parquet file's row groups;
    a CSV file is one piece, read in order. Every chunk read comes as a DataFrame whose index is
    the rows' positions in the file, so messages name the file's row.

    Args:
        path: the file.
        names: its column names.
        chunk_rows: rows read at a time ('auto': about ``CHUNK_BYTES`` of values).
    """

    def __init__(self, path: str, names: list[str], chunk_rows: int | str = "auto"):
        self.path, self.names = str(path), names
        self.parquet = self.path.lower().endswith(PARQUET)
        self.chunk_rows = chunk_rows if chunk_rows != "auto" else max(1024, CHUNK_BYTES // (8 * max(1, len(names))))
        self._starts = None  # Parquet: each row group's first row; a CSV: see _scan
        self._offsets = None  # a CSV: the byte where each piece of chunk_rows records starts
        if self.parquet:
            import pyarrow.parquet as pq

            metadata = pq.ParquetFile(self.path).metadata
            counts = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
            self._starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            self._uncompressed = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))

    @classmethod
    def open(cls, path: str, chunk_rows: int | str = "auto") -> TableFile:
        """The file's columns (and, for Parquet, its row groups), without reading its rows.

        Raises:
            DataError: the file is missing or is not a readable table.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"data file not found: {path}")
        try:
            if path.suffix.lower() in PARQUET:
                import pyarrow.parquet as pq

                names = list(pq.read_schema(path).names)
            else:
                names = [str(c) for c in pd.read_csv(path, sep=cls._sep(path), nrows=0).columns]
        except Exception as error:  # pandas and pyarrow raise many types for malformed files
            raise DataError(f"{path}: cannot be read as a table: {error}") from None
        return cls(str(path), names, chunk_rows)

    @staticmethod
    def _sep(path) -> str:
        return "\t" if str(path).lower().endswith(".tsv") else ","

    def estimated_bytes(self) -> int:
        """About how much memory the whole table would take as a DataFrame."""
        if self.parquet:
            return max(self._uncompressed, int(self._starts[-1]) * len(self.names) * 8)
        return int(Path(self.path).stat().st_size * 1.5)

    def too_large(self) -> bool:
        """Whether ``data.streaming: auto`` streams this file (``too_large``)."""
        return too_large(self.estimated_bytes())

    def units(self) -> list[int]:
        """The pieces readers can start at: Parquet row groups; a CSV's blocks of ``chunk_rows``
        records once ``fingerprint`` found where they start, else the whole file, in order."""
        if self.parquet:
            return list(range(len(self._starts) - 1))
        return list(range(len(self._offsets) - 1)) if self._offsets is not None else [0]

    def index_lines(self, rows: int) -> None:
        """Keep the CSV's record index (found by ``fingerprint``) only when its records are the
        ``rows`` rows pandas reads (blank lines, or quotes pandas reads otherwise, would shift
        them): else the file is read in order."""
        if self._offsets is not None and self._lines != rows:
            self._offsets = None

    def column(self, name: str) -> pd.Series:
        """One whole column (only it is read, a piece at a time)."""
        try:
            if self.parquet:
                import pyarrow.parquet as pq

                parts = [batch.column(0).to_pandas() for batch in
                         pq.ParquetFile(self.path).iter_batches(batch_size=1 << 20, columns=[name])]
                return pd.concat(parts, ignore_index=True).rename(name)
            return pd.read_csv(self.path, sep=self._sep(self.path), usecols=[name])[name]
        except Exception as error:
            raise DataError(f"{self.path}: column '{name}' cannot be read: {error}") from None

    def chunks(self, unit: int, columns: list[str]) -> Iterator[pd.DataFrame]:
        """The rows of piece ``unit``, ``chunk_rows`` at a time, with their positions as index."""
        sep = self._sep(self.path)
        try:
            if self.parquet:
                import pyarrow.parquet as pq

                start = int(self._starts[unit])
                # a buffered read decodes a row group's pages as batches need them (about half the
                # memory of reading its column chunks whole)
                reader = pq.ParquetFile(self.path, pre_buffer=False, buffer_size=1 << 20)
                for batch in reader.iter_batches(batch_size=self.chunk_rows, row_groups=[unit], columns=columns):
                    frame = batch.to_pandas()
                    frame.index = pd.RangeIndex(start, start + len(frame))
                    start += len(frame)
                    yield frame
            elif self._offsets is not None:  # one block of lines, from where it starts
                import io

                with open(self.path, "rb") as handle:
                    handle.seek(self._offsets[unit])
                    block = handle.read(self._offsets[unit + 1] - self._offsets[unit])
                frame = pd.read_csv(io.BytesIO(block), sep=sep, header=None, names=self.names, usecols=columns)
                start = unit * self.chunk_rows
                frame.index = pd.RangeIndex(start, start + len(frame))
                yield frame
            else:
                yield from pd.read_csv(self.path, sep=sep, usecols=columns, chunksize=self.chunk_rows)
        except DataError:
            raise
        except Exception as error:
            raise DataError(f"{self.path}: cannot be read as a table: {error}") from None

    def take(self, positions: np.ndarray, columns: list[str]) -> pd.DataFrame:
        """The rows at sorted ``positions`` (one pass over the pieces that hold any)."""
        taken = []
        for unit in self.units():
            if self.parquet:
                lo, hi = self._starts[unit], self._starts[unit + 1]
                if np.searchsorted(positions, lo) == np.searchsorted(positions, hi):
                    continue
            for frame in self.chunks(unit, columns):
                lo, hi = frame.index[0], frame.index[-1] + 1
                wanted = positions[np.searchsorted(positions, lo) : np.searchsorted(positions, hi)]
                if len(wanted):
                    taken.append(frame.iloc[wanted - lo])
        return pd.concat(taken) if taken else pd.DataFrame(columns=columns)

    def fingerprint(self) -> str:
        """SHA-256 of the file's bytes. Of a CSV, the same pass finds where each block of
        ``chunk_rows`` records starts, so that readers can start there: a record ends at a line
        break outside quotes (one preceded by an even number of quote characters, as a doubled
        quote inside a quoted field counts two)."""
        digest = hashlib.sha256()
        offsets, records, position, inside, last = [], 0, 0, 0, b""
        with open(self.path, "rb") as handle:
            while block := handle.read(READ_BYTES):
                digest.update(block)
                if not self.parquet:  # record n ends at break n; record 0 is the header, row r is record r + 1
                    raw = np.frombuffer(block, np.uint8)
                    ends = np.flatnonzero(raw == 10)
                    if inside or b'"' in block:  # whether each byte lies inside quotes, carried over
                        quoted = np.bitwise_xor.accumulate((raw == 34).view(np.uint8)) ^ inside
                        ends, inside = ends[quoted[ends] == 0], int(quoted[-1])
                    numbers = records + np.arange(len(ends))
                    offsets += (position + ends[numbers % self.chunk_rows == 0] + 1).tolist()
                    records += len(ends)
                position += len(block)
                last = block[-1:]
        if not self.parquet:
            offsets = [o for o in offsets if o < position]
            self._lines = records - 1 + (1 if last not in (b"\n", b"") else 0)
            self._offsets = np.array([*offsets, position], dtype=np.int64)
        return digest.hexdigest()
