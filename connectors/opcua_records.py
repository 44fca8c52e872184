"""Where each DataValue of an encoded HistoryData body starts, and its fields, found with numpy.

A DataValue (OPC-UA Part 6, 5.2.2.17) is a mask byte and the fields the mask names, in this
order: Value (0x01), StatusCode (0x02), SourceTimestamp (0x04), SourcePicoseconds (0x10),
ServerTimestamp (0x08), ServerPicoseconds (0x20). With a scalar value of fixed size, a
DataValue's length follows from its first two bytes (mask and variant type). Servers mix masks
within one answer (node-opcua leaves out the status of Good values), so the records are found
in runs of equal layout, each run checked with one strided comparison; when the runs are short,
by pointer jumping over the bytes where a record can begin instead, in log2(count) vectorized
steps. Then each field of the records of one layout is read at once: in place where they lie
back to back, else gathered by their offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# variant type id -> numpy type of a scalar of it (Null has no bytes); others are variable-size
SCALARS = {1: "u1", 2: "i1", 3: "u1", 4: "<i2", 5: "<u2", 6: "<i4", 7: "<u4", 8: "<i8", 9: "<u8", 10: "<f4", 11: "<f8"}
BOOLEAN = 1
# the optional fields after the value, in the order of the specification: (mask bit, name, numpy type)
FIELDS: tuple[tuple[int, str | None, str], ...] = (
    (0x02, "status", "<u4"),
    (0x04, "source", "<i8"),
    (0x10, None, "<u2"),
    (0x08, "server", "<i8"),
    (0x20, None, "<u2"),
)
RUN_WINDOW = 16  # records compared in the first strided check of a run; each further check takes 4 times more
RUNS_BEFORE_JUMPING, SHORT_RUN = 4, 256  # after 4 runs averaging under 256 records, jump instead


def layout(mask: int, variant: int) -> np.dtype | None:
    """The structured type of a DataValue encoded with `mask` and, if it has a value, `variant`;
    None when its size is not fixed (arrays, strings and other variable-size values, unknown bits)."""
    if mask & ~0x3F:
        return None
    placed: list[tuple[str, str, int]] = [("mask", "u1", 0)]  # (field, numpy type, offset)
    offset = 1
    if mask & 0x01:
        scalar = SCALARS.get(variant) if variant else None
        if variant and scalar is None:
            return None
        placed.append(("variant", "u1", 1))
        offset = 2
        if scalar is not None:
            placed.append(("value", scalar, 2))
            offset += np.dtype(scalar).itemsize
    for bit, name, kind in FIELDS:
        if mask & bit:
            if name is not None:  # picoseconds are below a timestamp's microseconds: skipped, in their place
                placed.append((name, kind, offset))
            offset += np.dtype(kind).itemsize
    names, formats, offsets = zip(*placed, strict=True)
    return np.dtype({"names": list(names), "formats": list(formats), "offsets": list(offsets), "itemsize": offset})


def _size_table() -> np.ndarray:
    """Record size by (mask byte, byte after it); 0 where the size is not fixed."""
    table = np.zeros((256, 256), np.int64)
    for mask in range(0x40):
        for variant in range(256) if mask & 0x01 else (0,):
            found = layout(mask, variant)
            if found is not None:
                table[mask, variant if mask & 0x01 else slice(None)] = found.itemsize
    return table


SIZES = _size_table()
RECORD_MAX = int(SIZES.max())


@dataclass(frozen=True)
class Records:
    """Where each DataValue starts in the body, and the (mask, variant) key of its layout."""

    starts: np.ndarray
    keys: np.ndarray


def _run_length(data: np.ndarray, position: int, size: int, limit: int) -> int:
    """How many records from `position` on share the layout of the first (at most `limit`)."""
    mask, variant = data[position], data[position + 1]
    count, window = 1, RUN_WINDOW
    while count < limit:
        take = min(window, limit - count)
        first, stop = position + count * size, position + (count + take) * size
        same = data[first:stop:size] == mask
        if mask & 0x01:
            same &= data[first + 1 : stop + 1 : size] == variant
        differs = np.flatnonzero(~same)
        if differs.size:
            return count + int(differs[0])
        count, window = count + take, window * 4
    return count


def _candidates(data: np.ndarray, position: int, layouts: set[tuple[int, int]] | None) -> tuple[np.ndarray, np.ndarray]:
    """Positions from `position` on where a record of one of `layouts` (mask, variant) could begin, with its
    size; with None, of any layout of fixed size."""
    body = data[position:-1]
    if layouts is None:
        sizes = SIZES.ravel()[(body.astype(np.intp) << 8) | data[position + 1 :]]
        found = np.flatnonzero(sizes)
        return found + position, sizes[found]
    starts, sizes = [], []
    for mask, variant in layouts:
        here = body == mask
        if mask & 0x01:
            here &= data[position + 1 :] == variant
        found = np.flatnonzero(here)
        starts.append(found + position)
        sizes.append(np.full(found.size, SIZES[mask, variant], np.int64))
    order = np.argsort(np.concatenate(starts), kind="stable")
    return np.concatenate(starts)[order], np.concatenate(sizes)[order]


def _jumped(data: np.ndarray, position: int, count: int, layouts: set[tuple[int, int]] | None) -> np.ndarray | None:
    """The starts of `count` records from `position` on, by pointer jumping.

    Only bytes that can begin a record take part (`_candidates`), renumbered densely; index
    `len(candidates)` is a sentinel that leads to itself: "no record can follow".
    """
    candidates, sizes = _candidates(data, position, layouts)
    if candidates.size == 0 or candidates[0] != position:
        return None
    number = np.full(data.size + RECORD_MAX, candidates.size, np.int32)  # position -> index
    number[candidates] = np.arange(candidates.size, dtype=np.int32)
    jump = np.append(number[candidates + sizes], np.int32(candidates.size))
    chain = np.zeros(1, np.int32)
    while chain.size < count:
        chain = np.concatenate([chain, jump[chain[: count - chain.size]]])
        if chain.size < count:
            jump = jump[jump]
    if chain[-1] == candidates.size:  # the chain met a byte no record (of these layouts) begins at
        return None
    return candidates[chain]


def find(body: bytes, offset: int = 4) -> Records | None:
    """The records of a HistoryData body (an Int32 count, then the DataValues from `offset`), or
    None when one is not of fixed size or they do not fill the body exactly."""
    if len(body) < offset:
        return None
    count = int.from_bytes(body[:4], "little", signed=True)
    if count <= 0:
        return None
    data = np.frombuffer(body + b"\x00", np.uint8)  # padded: the byte after a last mask can always be read
    end, position, done = len(body), offset, 0
    parts: list[np.ndarray] = []
    layouts: set[tuple[int, int]] = set()
    while done < count and (len(parts) < RUNS_BEFORE_JUMPING or done >= SHORT_RUN * len(parts)):
        if position >= end:
            return None
        mask, variant = int(data[position]), int(data[position + 1])
        size = int(SIZES[mask, variant])
        if not size or position + size > end:
            return None
        run = _run_length(data, position, size, min(count - done, (end - position) // size))
        parts.append(position + size * np.arange(run, dtype=np.int64))
        layouts.add((mask, variant if mask & 0x01 else 0))
        position, done = position + run * size, done + run
    if done < count:  # the runs are short: jump instead of walking, first over the layouts seen so far
        jumped = _jumped(data, position, count - done, layouts)
        if jumped is None:
            jumped = _jumped(data, position, count - done, None)
        if jumped is None:
            return None
        parts.append(jumped.astype(np.int64))
        last = int(jumped[-1])
        position = last + int(SIZES[data[last], data[last + 1]])
    if position != end:
        return None
    starts = np.concatenate(parts)
    masks = data[starts].astype(np.int64)
    variants = np.where(masks & 0x01, data[starts + 1], 0)
    return Records(starts, masks << 8 | variants)


def fields(body: bytes, starts: np.ndarray, key: int) -> dict[str, np.ndarray]:
    """The fields of the records of one layout at `starts`, by name (mask, variant, value, status,
    source, server as present). Records that lie back to back are viewed in place; others gathered."""
    found = layout(key >> 8, key & 0xFF)
    if found is None or found.names is None:
        raise ValueError(f"no fixed layout for DataValue mask {key >> 8:#x} and variant {key & 0xFF}")
    count, size = starts.size, found.itemsize
    if count and int(starts[-1]) - int(starts[0]) == (count - 1) * size and _evenly_spaced(starts, size):
        records = np.frombuffer(body, found, count, int(starts[0]))
        return {name: records[name] for name in found.names}
    gathered = {}
    for name, (kind, offset, *_) in (found.fields or {}).items():
        anywhere = np.ndarray((len(body) - kind.itemsize + 1,), kind, body, 0, (1,))  # one at every byte
        gathered[name] = anywhere[starts + offset]
    return gathered


def _evenly_spaced(starts: np.ndarray, size: int) -> bool:
    return starts.size < 2 or bool((np.diff(starts) == size).all())
