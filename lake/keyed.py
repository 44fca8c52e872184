"""Rows by their key: whether a table holds each key once, and which of its rows have a key another table holds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_ROW = "__plantlake_row"


def holding(table: pa.Table, found: pa.Table, keys: list[str]) -> pa.Array:
    """Per row of `table`, whether its `keys` are one of `found`'s rows (which holds those
    columns, in the types they are compared in; a null key matches nothing).

    The join reads the key columns and a row number only, and the caller filters by the mask:
    a join that carried every column of a 50,000-row table cost more than both together. One
    key column needs no join: a hash set of `found`'s keys answers for each row (half the time).
    """
    if len(keys) == 1:
        column, values = table[keys[0]].cast(found.schema.field(keys[0]).type), found[keys[0]].combine_chunks()
        mask = pc.is_in(column, value_set=values, skip_nulls=True)
        return mask.combine_chunks() if isinstance(mask, pa.ChunkedArray) else mask
    positions = (
        table.select(keys)
        .cast(found.schema)
        .append_column(_ROW, pa.array(np.arange(table.num_rows)))
        .join(found, keys, join_type="left semi")[_ROW]
    )
    mask = np.zeros(table.num_rows, bool)
    mask[positions.to_numpy()] = True
    return pa.array(mask)


def unique(table: pa.Table, keys: list[str]) -> bool:
    """Whether each key comes once (the usual case, as in a first load), as far as is told
    cheaply: for one key column; False for several (not known). Rising keys (a file or table
    read in key order) are unique without hashing or sorting.

    Otherwise the keys are sorted and neighbours compared (a null counts as a value, so two
    nulls are a duplicate). Not `count_distinct`: its hash table grows in steps, 27 MB for
    262,144 keys and 108 MB just past them.
    """
    if len(keys) != 1 or table.num_rows < 2:
        return len(keys) == 1
    column = table[keys[0]].combine_chunks()
    if column.null_count == 0 and pc.all(pc.greater(column[1:], column[:-1])).as_py():
        return True
    if column.null_count > 1:
        return False
    ordered = column.take(pc.array_sort_indices(column, null_placement="at_end"))
    ordered = ordered.slice(0, len(ordered) - column.null_count)
    return len(ordered) < 2 or bool(pc.all(pc.greater(ordered[1:], ordered[:-1])).as_py())
