"""HistoryData bodies decoded by numpy equal the DataValues they were encoded from, for every encoding mask.

The reference encoder is asyncua's (ua_binary), field by field in the order of OPC-UA Part 6:
Value, StatusCode, SourceTimestamp, SourcePicoseconds, ServerTimestamp, ServerPicoseconds.
asyncua's own DataValue encoder agrees with it except when source picoseconds and a server
timestamp are both present, where it writes the server timestamp first.
"""

import random
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary
from asyncua.ua.ua_binary import Primitives

from plantlake.connectors.opcua import READINGS_SCHEMA, Tag, _decode, _to_batch
from plantlake.connectors.opcua_decode import data_values, datavalue_from_binary, decode

pytestmark = pytest.mark.unit

TAG = Tag("ns=2;s=Plant.L1.M-101.X", "Plant/L1/M-101/X", "M-101", "X")
CONSTANTS = {"node_id": TAG.node_id, "browse_path": TAG.browse_path, "machine_id": TAG.machine_id, "tag": TAG.name}
START = datetime(2026, 1, 11, 6, tzinfo=UTC)
STATUSES = [0, 0x40000000, 0x80000000, 0x408F0000]
SCALARS = {
    ua.VariantType.Boolean: lambda i: i % 3 == 0,
    ua.VariantType.SByte: lambda i: i % 100 - 50,
    ua.VariantType.Byte: lambda i: i % 256,
    ua.VariantType.Int16: lambda i: -i,
    ua.VariantType.UInt16: lambda i: i,
    ua.VariantType.Int32: lambda i: -(i**2),
    ua.VariantType.UInt32: lambda i: 4_000_000_000 - i,
    ua.VariantType.Int64: lambda i: 2**53 + i,
    ua.VariantType.UInt64: lambda i: 2**40 + i,
    ua.VariantType.Float: lambda i: i * 0.25,
    ua.VariantType.Double: lambda i: i * 0.5 - 3,
}


def encode(value: ua.DataValue) -> bytes:
    """A DataValue in the order of the specification, each field by asyncua's encoder."""
    fields = [
        (0x01, value.Value, ua_binary.variant_to_binary),
        (0x02, value.StatusCode, lambda code: Primitives.UInt32.pack(code.value)),
        (0x04, value.SourceTimestamp, Primitives.DateTime.pack),
        (0x10, value.SourcePicoseconds, Primitives.UInt16.pack),
        (0x08, value.ServerTimestamp, Primitives.DateTime.pack),
        (0x20, value.ServerPicoseconds, Primitives.UInt16.pack),
    ]
    present = [(bit, item, pack) for bit, item, pack in fields if item is not None]
    return bytes([sum(bit for bit, _, _ in present)]) + b"".join(pack(item) for _, item, pack in present)


def body(values: list[ua.DataValue]) -> bytes:
    return Primitives.Int32.pack(len(values)) + b"".join(encode(value) for value in values)


def datavalue(mask: int, i: int, variant: ua.VariantType = ua.VariantType.Double) -> ua.DataValue:
    """The i-th value of a series, with exactly the fields `mask` names."""
    return ua.DataValue(
        Value=ua.Variant(SCALARS[variant](i), variant) if mask & 0x01 else None,
        StatusCode=ua.StatusCode(STATUSES[i % len(STATUSES)]) if mask & 0x02 else None,
        SourceTimestamp=START + timedelta(milliseconds=250 * i, microseconds=7) if mask & 0x04 else None,
        ServerTimestamp=START + timedelta(seconds=i, microseconds=3) if mask & 0x08 else None,
        SourcePicoseconds=(1234 + i) % 10_000 if mask & 0x10 else None,
        ServerPicoseconds=(9999 - i) % 10_000 if mask & 0x20 else None,
    )


def without_value(value: ua.DataValue) -> ua.DataValue:
    """`value` as the reference encoder sends it when its Value is left out (asyncua makes None a Variant)."""
    value.Value = None
    return value


def make(mask: int, i: int, variant: ua.VariantType = ua.VariantType.Double) -> ua.DataValue:
    made = datavalue(mask, i, variant)
    return made if mask & 0x01 else without_value(made)


def expected(values: list[ua.DataValue]) -> list[dict]:
    return _to_batch(TAG, values).to_pylist()


def test_the_reference_encoder_is_asyncuas_wherever_asyncua_keeps_the_order() -> None:
    for mask in range(64):
        value = make(mask, 5)
        ours = encode(value)
        assert ours[0] == mask
        if not (mask & 0x10 and mask & 0x08):
            assert ours == ua_binary.struct_to_binary(value), f"mask {mask:#x}"
        else:  # asyncua writes ServerTimestamp before SourcePicoseconds
            assert ours != ua_binary.struct_to_binary(value), f"mask {mask:#x}"


@pytest.mark.parametrize("mask", range(64), ids=lambda mask: f"mask={mask:#04x}")
def test_every_mask_decodes_to_what_was_encoded(mask: int) -> None:
    values = [make(mask, i) for i in range(40)]
    fast = decode(body(values), CONSTANTS, READINGS_SCHEMA)
    assert fast is not None
    if not mask & 0x0C:  # neither timestamp: the rows say so rather than invent one
        assert fast.column("source_timestamp").null_count == 40
        return
    assert fast.to_pylist() == expected(values)
    if mask & 0x08:
        assert fast.column("server_timestamp").to_pylist()[1] == START + timedelta(seconds=1, microseconds=3)


@pytest.mark.parametrize("variant", list(SCALARS), ids=lambda variant: variant.name)
def test_every_fixed_size_scalar_type_decodes_with_every_status(variant: ua.VariantType) -> None:
    values = [make(0x3F, i, variant) for i in range(60)]
    fast = decode(body(values), CONSTANTS, READINGS_SCHEMA)
    assert fast is not None
    assert fast.to_pylist() == expected(values)
    assert set(fast.column("status").to_pylist()) == {"Good", "Uncertain", "Bad"}


@pytest.mark.parametrize("layout", ["long runs", "runs", "alternating", "random"])
def test_answers_that_mix_masks_and_types_decode_value_for_value(layout: str) -> None:
    """node-opcua leaves out the status of Good values; Bad ones may carry no value at all."""
    chooser = random.Random(14)
    timed = [mask for mask in range(64) if mask & 0x04]  # history always carries a source timestamp
    variants = list(SCALARS)
    values = []
    for i in range(3_000):
        if layout == "long runs":  # read run by run
            mask, variant = (0x0F if i in (1_000, 2_500) else 0x0D), ua.VariantType.Double
        elif layout == "runs":  # stretches of Good values, now and then a Bad one with its status
            mask = 0x0F if i % 500 in (7, 8, 9) else 0x0D
            variant = ua.VariantType.Double
        elif layout == "alternating":
            mask, variant = (0x0D, ua.VariantType.Double) if i % 2 else (0x1F, ua.VariantType.Float)
        else:
            mask, variant = chooser.choice(timed), chooser.choice(variants)
        values.append(make(mask, i, variant))
    fast = decode(body(values), CONSTANTS, READINGS_SCHEMA)
    assert fast is not None
    assert fast.to_pylist() == expected(values)


def test_picoseconds_leave_the_server_timestamp_its_own() -> None:
    value = make(0x3F, 3)
    encoded = body([value])
    assert decode(encoded, CONSTANTS, READINGS_SCHEMA).column("server_timestamp")[0].as_py() == value.ServerTimestamp
    general = data_values(encoded)[0]
    assert (general.ServerTimestamp, general.SourcePicoseconds, general.ServerPicoseconds) == (
        value.ServerTimestamp,
        value.SourcePicoseconds,
        value.ServerPicoseconds,
    )
    assert general.ServerTimestamp.year == 2026  # not 1601-01-01


@pytest.mark.parametrize("mask", range(64), ids=lambda mask: f"mask={mask:#04x}")
def test_the_general_path_reads_every_mask_in_the_order_of_the_specification(mask: int) -> None:
    value = ua.DataValue(
        Value=ua.Variant("Störung 7", ua.VariantType.String) if mask & 0x01 else None,
        StatusCode=ua.StatusCode(0x80000000) if mask & 0x02 else None,
        SourceTimestamp=START if mask & 0x04 else None,
        ServerTimestamp=START + timedelta(seconds=1) if mask & 0x08 else None,
        SourcePicoseconds=17 if mask & 0x10 else None,
        ServerPicoseconds=9_000 if mask & 0x20 else None,
    )
    if not mask & 0x01:
        value = without_value(value)
    decoded = datavalue_from_binary(Buffer(encode(value)))
    assert decoded.Value.Value == (value.Value.Value if value.Value is not None else None)
    assert decoded.StatusCode.value == (value.StatusCode.value if value.StatusCode is not None else 0)
    assert (decoded.SourceTimestamp, decoded.SourcePicoseconds) == (value.SourceTimestamp, value.SourcePicoseconds)
    assert (decoded.ServerTimestamp, decoded.ServerPicoseconds) == (value.ServerTimestamp, value.ServerPicoseconds)


def test_bodies_with_text_or_arrays_take_the_general_path_and_still_decode() -> None:
    values = [make(0x0D, i) for i in range(50)]
    values[7] = ua.DataValue(ua.Variant("text", ua.VariantType.String), SourceTimestamp=START, SourcePicoseconds=5)
    values[9] = ua.DataValue(ua.Variant([1.0, 2.0], ua.VariantType.Double), SourceTimestamp=START)
    encoded = body(values)
    assert decode(encoded, CONSTANTS, READINGS_SCHEMA) is None
    assert _decode(TAG, encoded).to_pylist() == expected(values)
    assert pa.Table.from_batches([_decode(TAG, encoded)]).num_rows == 50


@pytest.mark.parametrize("cut", [1, 3, 11])
def test_a_body_that_does_not_add_up_is_not_taken_by_the_fast_path(cut: int) -> None:
    encoded = body([make(0x1F, i) for i in range(20)])
    assert decode(encoded[:-cut], CONSTANTS, READINGS_SCHEMA) is None  # short
    assert decode(encoded + b"\x00" * cut, CONSTANTS, READINGS_SCHEMA) is None  # too long
    wrong_count = Primitives.Int32.pack(21) + encoded[4:]
    assert decode(wrong_count, CONSTANTS, READINGS_SCHEMA) is None
    assert decode(Primitives.Int32.pack(0), CONSTANTS, READINGS_SCHEMA) is None


def test_a_uint64_beyond_the_signed_range_keeps_its_number_but_no_exact_integer() -> None:
    values = [make(0x0D, i, ua.VariantType.UInt64) for i in range(6)]
    values[2].Value = ua.Variant(2**64 - 1, ua.VariantType.UInt64)
    fast = decode(body(values), CONSTANTS, READINGS_SCHEMA)
    general = _decode(TAG, body([*values, ua.DataValue(ua.Variant("text"), SourceTimestamp=START)]))
    for batch in (fast, general):
        assert batch.column("value_int").to_pylist()[:6] == [2**40, 2**40 + 1, None, 2**40 + 3, 2**40 + 4, 2**40 + 5]
        assert batch.column("value")[2].as_py() == float(2**64 - 1)
