"""The table codec: every form of rows (CSV file or body, Parquet, DataFrame, JSON rows and
columns, arrays) reads to the same matrix, by the fitted state alone; hostile files are read or
refused the same way wherever they arrive."""

import re

import numpy as np
import pandas as pd
import pytest

from layerforge.codecs import tables
from layerforge.codecs.tables import CsvText, TableCodec
from layerforge.errors import DataError

STATE = {"kind": "table", "unknown_categories": "error", "columns": [
    {"name": "zip", "kind": "categorical", "categories": ["01001", "02002", "A1", "<missing>"]},
    {"name": "x", "kind": "numeric", "mean": 0.5, "std": 2.0, "fill": 0.25, "indicator": True},
    {"name": "flag", "kind": "boolean", "mean": 0.5, "std": 0.5, "fill": 1.0, "indicator": False},
]}
EXPECTED = np.array([[1, 0, 0, 0, 0.0, 0, 1], [0, 0, 1, 0, -0.125, 1, -1], [0, 0, 0, 1, 0.75, 0, 1]], np.float32)


def _forms(tmp_path):
    """The same three rows in every form rows take."""
    text = "zip,x,flag\n01001,0.5,true\nA1,,False\n,2.0,1\n"
    csv = tmp_path / "rows.csv"
    csv.write_text(text)
    tsv = tmp_path / "rows.tsv"
    tsv.write_text(text.replace(",", "\t"))
    frame = pd.DataFrame({"zip": ["01001", "A1", None], "x": [0.5, np.nan, 2.0], "flag": [True, False, True]})
    parquet = tmp_path / "rows.parquet"
    frame.to_parquet(parquet)
    json_rows = [{"zip": "01001", "x": 0.5, "flag": True}, {"zip": "A1", "x": None, "flag": False},
                 {"zip": None, "x": 2, "flag": 1}]
    return {"csv": csv, "tsv": tsv, "body": CsvText(text), "parquet": parquet, "frame": frame, "rows": json_rows,
            "columns": {name: [row[name] for row in json_rows] for name in ("zip", "x", "flag")},
            "bom": _written(tmp_path / "bom.csv", "\ufeff" + text),
            "blank lines": _written(tmp_path / "blank.csv", "\n" + text.replace("\n", "\n\n", 2) + "\n\n"),
            "crlf": _written(tmp_path / "crlf.csv", text.replace("\n", "\r\n"))}


def _written(path, text):
    path.write_bytes(text.encode("utf-8"))
    return path


def test_every_form_of_the_same_rows_encodes_the_same(tmp_path):
    codec = TableCodec(STATE)
    for name, rows in _forms(tmp_path).items():
        (x,), _ = codec.encode(rows)
        np.testing.assert_array_equal(x, EXPECTED, err_msg=name)


def test_a_leading_zero_code_alone_in_its_file_is_still_its_category(tmp_path):
    """The file's other cells never decide a column's type: '01001' alone is the category
    '01001', not the number 1001."""
    path = _written(tmp_path / "one.csv", "zip,x,flag\n01001,0.5,true\n")
    (x,), _ = TableCodec(STATE).encode(path)
    np.testing.assert_array_equal(x, EXPECTED[:1])
    with pytest.raises(DataError, match=r"column 'zip': unseen category '1001' in row 1 \(line 2 of two.csv\)"):
        TableCodec(STATE).encode(_written(tmp_path / "two.csv", "zip,x,flag\n1001,0.5,true\n"))


def test_blocks_of_a_large_file_read_each_row_as_the_whole_file_does(tmp_path, monkeypatch):
    """Rows of numeric-looking codes first, text codes later: every block reads the same."""
    lines = ["zip,x,flag"] + ["01001,0.5,true"] * 7 + ["A1,1.5,false", "99999,1.5,false"] * 3
    path = _written(tmp_path / "big.csv", "\n".join(lines) + "\n")
    codec = TableCodec({**STATE, "unknown_categories": "bucket"})
    (whole,), _ = codec.encode(path)
    monkeypatch.setattr(tables, "BLOCK_CELLS", 3 * 2)  # two rows a block
    blocks = list(codec.pieces(path))
    assert [block.rows for block in blocks] == [2] * 6 + [1]
    joined = np.concatenate([codec.encode(block)[0][0] for block in blocks])
    np.testing.assert_array_equal(joined, whole)
    assert (whole[:7] == whole[0]).all() and whole[8][:4].sum() == 0  # 99999 unseen: the unknown bucket
    with pytest.raises(DataError, match=r"unseen category '99999' in row 9 \(line 10 of big.csv\) and 2 more rows"):
        TableCodec(STATE).encode(path)
    with pytest.raises(DataError, match=r"unseen category '99999' in row 9 \(line 10 of big.csv\) \(known"):
        TableCodec(STATE).encode(next(b for b in blocks if "99999" in b.values["zip"]))


def test_rows_after_blank_lines_are_named_by_their_own_line(tmp_path):
    path = _written(tmp_path / "gaps.csv", "zip,x,flag\n\n01001,0.5,true\n\n\nA1,big,true\n")
    with pytest.raises(DataError, match=r"column 'x': expected numbers, found 'big' in row 2 \(line 6 of gaps.csv\)"):
        TableCodec(STATE).encode(path)


def test_damaged_csv_is_refused_with_the_line_and_what_to_do(tmp_path):
    cases = {
        "zip,x,x\n01001,1,2\n": "the header names column 'x' twice (fields 2 and 3); rename one of them",
        "zip,x,flag\n01001,1\n": "line 2 has 2 fields, the header 3",
        "zip,x,flag\n01001,1,true,4\n": "line 2 has 4 fields, the header 3",
        "zip,x,flag\n": "holds no rows",
        "": "holds no rows",
        "zip,x,flag\n01001,1,tr\x00ue\n": "column 'flag': expected true/false values, found 'tr\\x00ue' in row 1",
    }
    for number, (text, words) in enumerate(cases.items()):
        path = _written(tmp_path / f"bad{number}.csv", text)
        with pytest.raises(DataError, match=re.escape(words)):
            TableCodec(STATE).encode(path)
        with pytest.raises(DataError, match=re.escape(words)):
            TableCodec(STATE).encode(CsvText(text))
    (tmp_path / "latin.csv").write_bytes("zip,x,flag\nA1,1,true\nZ\xe9,1,true\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin.csv: is not UTF-8 text"):
        TableCodec(STATE).encode(tmp_path / "latin.csv")


def test_json_cells_follow_the_csv_rules():
    codec = TableCodec(STATE)
    row = {"zip": "01001", "x": 0.5, "flag": True}
    for cell, words in [({"x": True}, "column 'x': expected numbers, found True in row 1"),
                        ({"x": "1_000"}, "column 'x': expected numbers, found '1_000' in row 1"),
                        ({"x": "١٢"}, "column 'x': expected numbers, found '١٢' in row 1"),
                        ({"flag": "yes"}, "column 'flag': expected true/false values, found 'yes' in row 1"),
                        ({"flag": "on"}, "column 'flag': expected true/false values, found 'on' in row 1"),
                        ({"flag": "t"}, "column 'flag': expected true/false values, found 't' in row 1"),
                        ({"zip": 1001}, "column 'zip': unseen category '1001' in row 1")]:
        with pytest.raises(DataError, match=words):
            codec.encode([{**row, **cell}])
    codes = TableCodec({"kind": "table", "columns": [{"name": "code", "kind": "categorical",
                                                       "categories": ["1", "2", "3"]}]})
    assert codes.encode([{"code": 1}, {"code": "2"}, {"code": 3.0}, {"code": "3.0"}])[0][0].argmax(1).tolist() == \
        [0, 1, 2, 2]
    with pytest.raises(DataError, match=r"column 'code': a missing value in row 2 \(known: 1, 2, 3\)"):
        codes.encode([{"code": 1}, {"code": None}])
    with pytest.raises(DataError, match="row 2 has no value for column 'x'"):
        codec.encode([row, {"zip": "A1", "flag": True}])
    with pytest.raises(DataError, match="column 'x' holds 1 values but 'zip' holds 2"):
        codec.encode({"zip": ["A1", "A1"], "x": [1], "flag": [True, True]})


def test_reading_number_columns_at_once_gives_what_reading_them_one_by_one_gives(monkeypatch):
    """The one-pass path for plain numbers (a request's row of many columns) and the
    column-by-column path agree on numbers, missing values and every refusal."""
    rng = np.random.default_rng(0)
    state = {"kind": "table", "columns": [
        {"name": f"c{i}", "kind": "numeric", "mean": float(i), "std": 2.0, "fill": 0.5, "indicator": i % 2 == 0}
        for i in range(6)]}
    values = rng.normal(size=(5, 6)).round(3)
    forms = [
        [dict(zip([f"c{i}" for i in range(6)], row.tolist())) for row in values],  # JSON numbers
        [{**dict(zip([f"c{i}" for i in range(6)], row.tolist())), "c0": None} for row in values],  # nulls
        CsvText("c0,c1,c2,c3,c4,c5\n" + "\n".join(",".join(map(str, row)) for row in values) + "\n1,,3,4,5,6\n"),
        pd.DataFrame(values, columns=[f"c{i}" for i in range(6)]),
        [{**dict(zip([f"c{i}" for i in range(6)], row.tolist())), "c3": True} for row in values],  # refused
        CsvText("c0,c1,c2,c3,c4,c5\n1,2,inf,4,5,6\n"),  # refused: infinite
        CsvText("c0,c1,c2,c3,c4,c5\n1,2,3,1_000,5,6\n"),  # refused
        [{**dict(zip([f"c{i}" for i in range(6)], row.tolist())), "c5": 1e300} for row in values],  # too far
    ]

    def encoded(rows):
        try:
            return TableCodec(state).encode(rows)[0][0]
        except DataError as error:
            return str(error)

    fast = [encoded(rows) for rows in forms]
    monkeypatch.setattr(tables, "plain_numbers", lambda columns: None)
    slow = [encoded(rows) for rows in forms]
    for one, other in zip(fast, slow):
        if isinstance(one, str):
            assert one == other
        else:
            np.testing.assert_array_equal(one, other)
    assert sum(isinstance(found, str) for found in fast) == 4


def test_pixels_of_0_255_are_refused_by_a_run_trained_on_0_1():
    import numpy as np

    from layerforge.codecs.arrays import ImageCodec

    codec = ImageCodec({"mean": [0.3], "std": [0.4], "size": [8, 8], "channels": 1})
    bright = np.random.default_rng(0).integers(0, 256, size=(2, 8, 8)).astype(np.uint8)
    with pytest.raises(DataError, match=r"pixels go up to 2\d\d, but this run was trained on pixels in \[0, 1\]; "
                                        r"divide the images by 255"):
        codec.encode(bright)
    (x,), _ = codec.encode(bright / 255.0)
    assert x.shape == (2, 1, 8, 8)
    wide = ImageCodec({"mean": [33.0], "std": [78.0], "size": [8, 8], "channels": 1})  # trained on 0-255
    assert wide.encode(bright)[0][0].shape == (2, 1, 8, 8)
