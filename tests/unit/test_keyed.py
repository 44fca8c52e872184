"""Which rows of a table have a key another table holds."""

import pyarrow as pa
import pytest

from plantlake.lake import keyed

pytestmark = pytest.mark.unit


def test_rows_whose_compound_key_is_found_and_no_other() -> None:
    table = pa.table({"plant": ["A", "A", "B", None], "order": [1, 2, 1, 1], "note": ["x", "y", "z", "w"]})
    found = pa.table({"plant": ["A", "B", None], "order": [2, 1, 1]})
    assert keyed.holding(table, found, ["plant", "order"]).to_pylist() == [False, True, True, False]  # null: no match


def test_keys_are_compared_in_the_found_table_types() -> None:
    table = pa.table({"id": pa.array([5, 6, 7], pa.int32())})
    found = pa.table({"id": pa.array([7, 8], pa.int64())})
    assert keyed.holding(table, found, ["id"]).to_pylist() == [False, False, True]


def test_an_empty_table_or_nothing_found() -> None:
    found = pa.table({"id": pa.array([], pa.int64())})
    assert keyed.holding(pa.table({"id": [1, 2]}), found, ["id"]).to_pylist() == [False, False]
    assert keyed.holding(pa.table({"id": pa.array([], pa.int64())}), pa.table({"id": [1]}), ["id"]).to_pylist() == []


def test_one_key_column_matches_as_the_join_does_nulls_included() -> None:
    table = pa.table({"id": pa.chunked_array([[1, None, 3], [4, 5]], pa.int64())})
    found = pa.table({"id": pa.chunked_array([[None, 3], [5, 9]], pa.int64())})
    mask = keyed.holding(table, found, ["id"])
    assert isinstance(mask, pa.Array) and mask.to_pylist() == [False, False, True, False, True]  # null: no match
    with_other = keyed.holding(
        table.append_column("k", pa.array([0] * 5)), found.append_column("k", pa.array([0] * 4)), ["id", "k"]
    )
    assert with_other.to_pylist() == mask.to_pylist(), "the join of compound keys says the same"
