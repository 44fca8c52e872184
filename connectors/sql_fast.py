"""The fast path for PostgreSQL and MariaDB/MySQL: connectorx streams Arrow batches.

connectorx reads PostgreSQL with binary COPY and MySQL over its binary protocol, decoding
straight into Arrow in Rust, several times faster than building rows in Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import sqlalchemy as sa

_SCHEMES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def supports(engine: sa.Engine) -> bool:
    return engine.dialect.name in _SCHEMES


def connection_url(url: sa.URL) -> str:
    """The SQLAlchemy URL in the form connectorx takes (no driver suffix, password kept)."""
    scheme = _SCHEMES[url.get_backend_name()]
    plain = url.set(drivername=scheme)
    if scheme == "mysql" and plain.password is None:
        plain = plain.set(password="")
    return plain.render_as_string(hide_password=False)


def render(query: sa.Select, engine: sa.Engine) -> str:
    """The query as SQL text, with identifiers quoted and values escaped by the dialect itself."""
    dialect = type(engine.dialect)(paramstyle="named")  # no '%' doubling of the pyformat drivers
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def stream(engine: sa.Engine, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    import connectorx  # imported here: only the fast path needs it

    options = {"protocol": "binary"} if engine.dialect.name == "postgresql" else {}
    reader = connectorx.read_sql(
        connection_url(engine.url), query, return_type="arrow_stream", batch_size=batch_rows, **options
    )
    yield from reader
