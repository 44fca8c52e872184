"""HistoryData bodies decoded by numpy equal what asyncua decodes, for every shape the fast path takes."""

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from asyncua import ua
from asyncua.ua import ua_binary

from plantlake.connectors.opcua import READINGS_SCHEMA, Tag, _decode, _to_batch
from plantlake.connectors.opcua_decode import decode

pytestmark = pytest.mark.unit

TAG = Tag("ns=2;s=Plant.L1.M-101.X", "Plant/L1/M-101/X", "M-101", "X")
START = datetime(2026, 1, 11, 6, tzinfo=UTC)


def _body(values: list[ua.DataValue]) -> bytes:
    return ua_binary.struct_to_binary(ua.HistoryData(DataValues=values))


def _values(variant: ua.VariantType, make, statuses=None, server: bool = True) -> list[ua.DataValue]:
    return [
        ua.DataValue(
            ua.Variant(make(i), variant),
            StatusCode=ua.StatusCode((statuses or [0])[i % len(statuses or [0])]),
            SourceTimestamp=START + timedelta(milliseconds=250 * i),
            ServerTimestamp=START + timedelta(seconds=i) if server else None,
        )
        for i in range(50)
    ]


@pytest.mark.parametrize(
    ("variant", "make"),
    [
        (ua.VariantType.Double, lambda i: i * 0.5 - 3),
        (ua.VariantType.Float, lambda i: i * 0.25),
        (ua.VariantType.Int32, lambda i: -i),
        (ua.VariantType.Int64, lambda i: 2**53 + i),
        (ua.VariantType.UInt16, lambda i: i),
        (ua.VariantType.Boolean, lambda i: i % 3 == 0),
    ],
)
def test_fixed_records_decode_as_asyncua_does(variant: ua.VariantType, make) -> None:
    values = _values(variant, make, statuses=[0, 0x40000000, 0x80000000])
    fast = decode(
        _body(values),
        {"node_id": TAG.node_id, "browse_path": TAG.browse_path, "machine_id": TAG.machine_id, "tag": TAG.name},
        READINGS_SCHEMA,
    )
    assert fast is not None
    assert fast.to_pylist() == _to_batch(TAG, values).to_pylist()
    assert set(fast.column("status").to_pylist()) == {"Good", "Uncertain", "Bad"}


def test_bodies_of_mixed_encodings_take_the_general_path_and_still_decode() -> None:
    values = _values(ua.VariantType.Double, float)
    values[7] = ua.DataValue(ua.Variant("text", ua.VariantType.String), SourceTimestamp=START)  # another type
    values[9] = ua.DataValue(ua.Variant(1.0, ua.VariantType.Double), SourceTimestamp=START)  # no server timestamp
    body = _body(values)
    assert decode(body, {}, READINGS_SCHEMA) is None
    assert _decode(TAG, body).to_pylist() == _to_batch(TAG, values).to_pylist()
    assert pa.Table.from_batches([_decode(TAG, body)]).num_rows == 50
