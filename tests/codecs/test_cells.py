"""The one reader of cells: numbers, true/false values, missing values and category keys read
the same way whether a cell comes from CSV text, JSON, Parquet or a DataFrame."""

import io
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerforge.codecs.cells import Where, category_codes, category_key, is_missing, numbers
from layerforge.data.labels import category_key as label_key
from layerforge.errors import DataError

WHERE = Where("new.csv")


def test_decimal_text_is_a_number_and_nothing_else_is():
    good = ["1", "+1", "-1", " 1", "1 ", "\t3", "1.", ".5", "1e5", "1E+5", "+.5e-3", "-0", "00012", "1e-400"]
    assert numbers(good, "x", WHERE).tolist() == [float(cell) for cell in good]
    for cell in ["1_000", "١٢", "12\xa0", "0x10", "1,5", "1d5", "--1", "1.5.2", " ", "1e", "yes", "NAN"]:
        with pytest.raises(DataError, match=re.escape(f"column 'x': expected numbers, found {cell!r} in row 2 (line 3 of new.csv)")):
            numbers(["1", cell], "x", WHERE)


def test_missing_words_json_null_and_nan_are_missing():
    cells = ["", "NA", "null", "NaN", "n/a", None, float("nan"), pd.NA, np.float32("nan")]
    assert all(is_missing(cell) for cell in cells)
    assert np.isnan(numbers(cells, "x", WHERE)).all()
    assert not is_missing("none") and not is_missing(" ") and not is_missing(0)


def test_infinities_and_booleans_in_a_number_column_are_refused():
    for cells in (["inf"], ["1", "-Infinity"], [float("inf")], np.array([1.0, np.inf])):
        with pytest.raises(DataError, match="column 'x': an infinite value in row"):
            numbers(cells, "x", WHERE)
    for cells in ([True], [1.0, False], np.array([True, False])):
        with pytest.raises(DataError, match="column 'x': expected numbers, found (True|False|true/false)"):
            numbers(cells, "x", WHERE)


def test_true_false_cells():
    good = ["true", "FALSE", "True", "1", "0", "1.0", "0.0", True, False, 1, 0, 1.0, np.bool_(True), None, ""]
    found = numbers(good, "flag", WHERE, boolean=True)
    assert found[:13].tolist() == [1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1] and np.isnan(found[13:]).all()
    for cell in ("yes", "on", "t", "2", 2, 0.5):
        with pytest.raises(DataError, match=re.escape(f"column 'flag': expected true/false values, found {cell!r}")):
            numbers(["true", cell], "flag", WHERE, boolean=True)


def test_messages_show_what_the_user_wrote_not_numpy_reprs():
    with pytest.raises(DataError, match=r"found 'x' in row 1 and 2 more rows; fix the values$"):
        numbers(np.array(["x", "y", "z"], dtype=object), "a", Where())
    with pytest.raises(DataError, match=r"expected true/false values, found 3 in row 2"):
        numbers(np.array([1, 3]), "a", Where(), boolean=True)


def test_category_keys_are_one_function_everywhere():
    assert label_key is category_key
    assert [category_key(v) for v in (3, 3.0, np.int64(3), np.float64(3.0), "3", True, np.float32(0.1), 0.1,
                                      "01001")] == ["3", "3", "3", "3", "3", "true", "0.1", "0.1", "01001"]
    index = {"01001": 0, "1": 1, "0.1": 2, "A1": 3, "<missing>": 4}
    codes, keys = category_codes(["01001", 1, "1.0", np.float32(0.1), "A1", None, "", "1001", "a1"], index)
    assert codes.tolist() == [0, 1, 1, 2, 3, 4, 4, -1, -1]  # '1001' is not '01001'; keys are not folded
    assert keys[:5] == ["01001", "1", "1.0", "0.1", "A1"] and keys[5] is None


def test_a_cell_reads_the_same_whatever_the_other_cells_of_its_column():
    codes_alone, _ = category_codes(["01001"], {"01001": 0, "A1": 1})
    codes_mixed, _ = category_codes(["01001", "A1"], {"01001": 0, "A1": 1})
    assert codes_alone[0] == codes_mixed[0] == 0
    assert numbers(["1"], "x", WHERE)[0] == numbers(["1", ""], "x", WHERE)[0] == numbers(["1", "2.5"], "x", WHERE)[0]


def _pandas_reads(cell: str):
    """What pandas.read_csv makes of one cell beside a plain number: a float, or None (text)."""
    frame = pd.read_csv(io.StringIO('a\n"' + cell.replace('"', '""') + '"\n2\n'), float_precision="round_trip")
    value = frame["a"].iloc[0]
    if pd.api.types.is_numeric_dtype(frame["a"]):
        return None if pd.isna(value) else float(value)
    return None


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789.eE+- \t_x", min_size=1, max_size=8))
def test_text_cells_are_numbers_exactly_when_csv_readers_read_them_as_numbers(cell):
    if is_missing(cell):
        return
    theirs = _pandas_reads(cell)
    try:
        ours = float(numbers([cell], "a", WHERE)[0])
    except DataError as error:
        ours = "infinite" if "infinite" in str(error) else None
    if theirs is not None and np.isinf(theirs):
        assert ours == "infinite", cell
    else:
        assert ours == theirs, cell
