"""What the log parsers share: the fields they find, as JSON text, values placed back at their rows."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from plantlake.connectors.log_times import Times


@dataclass
class Fields:
    """What a parser found in a block of entries, one value per entry; `reason`: why one does not parse."""

    parsed: pa.Array
    times: Times
    host: pa.Array
    severity: pa.Array
    code: pa.Array
    message: pa.Array
    extra: pa.Array
    reason: pa.Array | str


def json_text(values: pa.Array) -> pa.Array:
    """Strings as JSON string literals (null stays null)."""
    escaped = values
    if pc.any(pc.match_substring_regex(values, r'["\\\n\r\t]')).as_py():
        for old, new in (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            escaped = pc.replace_substring(escaped, old, new)
    return pc.binary_join_element_wise('"', escaped, '"', "")


def json_object(fields: dict[str, pa.Array]) -> pa.Array:
    """Named string fields of each row as one JSON object (fields without a value left out)."""
    if not fields:
        return pa.nulls(0, pa.string())
    parts = [
        pc.binary_join_element_wise(f'"{name}": ', json_text(values), "") for name, values in sorted(fields.items())
    ]
    if all(values.null_count == 0 for values in fields.values()):
        body = pc.binary_join_element_wise(*parts, ", ") if len(parts) > 1 else parts[0]
        return pc.binary_join_element_wise("{", body, "}", "")
    parts = [pc.if_else(pc.is_valid(part), part, "") for part in parts]
    body = pc.binary_join_element_wise(*parts, ", ") if len(parts) > 1 else parts[0]
    body = pc.replace_substring_regex(pc.replace_substring_regex(body, r"^(, )+|(, )+$", ""), r"(, ){2,}", ", ")
    return pc.if_else(pc.equal(body, ""), pa.scalar(None, pa.string()), pc.binary_join_element_wise("{", body, "}", ""))


def scatter(values: pa.Array, mask: pa.Array, length: int) -> pa.Array:
    """`values` placed at the rows where `mask` is true, null elsewhere."""
    return pc.replace_with_mask(pa.nulls(length, values.type), mask, values)
