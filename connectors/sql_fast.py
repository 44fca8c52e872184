"""The fast paths: PostgreSQL through ADBC, MariaDB/MySQL through connectorx.

ADBC's PostgreSQL driver reads with binary COPY and decodes straight into Arrow in C;
connectorx reads MySQL over its binary protocol and decodes into Arrow in Rust. Both are
several times faster than building rows in Python, and both stream record batches.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultDialect

# The Delta writer takes in several batches before it flushes: small batches keep that bounded.
_ADBC_BATCH_BYTES = 4 << 20
_SCHEMES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}


def supports(engine: sa.Engine) -> bool:
    return engine.dialect.name in _SCHEMES


def reader_name(engine: sa.Engine) -> str:
    return "adbc" if engine.dialect.name == "postgresql" else "connectorx"


def connection_url(url: sa.URL) -> str:
    """The SQLAlchemy URL as the driver takes it (no driver suffix, password kept)."""
    scheme = _SCHEMES[url.get_backend_name()]
    plain = url.set(drivername=scheme)
    if scheme == "mysql" and plain.password is None:
        plain = plain.set(password="")
    return plain.render_as_string(hide_password=False)


def render(query: sa.Select, engine: sa.Engine) -> str:
    """The query as SQL text, with identifiers quoted and values escaped by the dialect itself."""
    dialect_class = type(engine.dialect)
    if not issubclass(dialect_class, DefaultDialect):  # every SQLAlchemy dialect is one
        raise TypeError(f"cannot render SQL for {dialect_class.__qualname__}: not a SQLAlchemy DefaultDialect")
    dialect = dialect_class(paramstyle="named")  # no '%' doubling of the pyformat drivers
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def stream(engine: sa.Engine, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    if engine.dialect.name == "postgresql":
        yield from _adbc_stream(connection_url(engine.url), query, batch_rows)
        return
    import connectorx  # imported here: only the MySQL fast path needs it

    yield from connectorx.read_sql(connection_url(engine.url), query, return_type="arrow_stream", batch_size=batch_rows)


# ADBC reads the server's type catalog as it connects (35 of the 40 ms a connection took here), unless
# told to rely on its built-in table of PostgreSQL's own types (7 ms). Types outside it arrive as
# opaque bytes: enums and citext are read as text (`sql.TableRead.select`), and a read that meets
# another (an extension's, a composite) is run again on a connection that has read the catalog
# (`_adbc_stream`).
_BUILTIN_TYPES = {"adbc.postgresql.type_resolver_mode": "builtin"}


def _connect(url: str, catalog: bool = False) -> Any:
    import adbc_driver_postgresql.dbapi as postgresql  # imported here: only the PostgreSQL fast path needs it

    return postgresql.connect(url, db_kwargs=None if catalog else _BUILTIN_TYPES)


def _unresolved(schema: pa.Schema) -> list[str]:
    """Columns whose type the driver could not name: it hands their values over as opaque bytes."""
    return [
        field.name
        for field in schema
        if isinstance(field.type, pa.OpaqueType) and field.type.type_name.startswith("unnamed")
    ]


_opened_ahead: dict[str, list[Future]] = {}
_opened_ahead_lock = threading.Lock()


@contextmanager
def connecting_ahead(engine: sa.Engine) -> Iterator[None]:
    """Open the PostgreSQL fast path's connection in a thread while the caller reflects the table
    and plans its read; the read in the block takes it. A connection costs as much as reflecting
    a table does, more where ADBC reads the type catalog (see `_BUILTIN_TYPES`): a tenth of a
    nightly step that lands a few thousand rows. A connection no read took is closed when the
    block ends."""
    if engine.dialect.name != "postgresql":
        yield
        return
    url = connection_url(engine.url)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="plantlake-connect") as opener:
        future = opener.submit(_connect, url)
        with _opened_ahead_lock:
            _opened_ahead.setdefault(url, []).append(future)
        try:
            yield
        finally:
            with _opened_ahead_lock:
                waiting = _opened_ahead.get(url, [])
                untaken = future in waiting
                if untaken:
                    waiting.remove(future)
            if untaken and future.exception() is None:
                future.result().close()


def _connection(url: str) -> Any:
    """A connection opened ahead for `url` (see `connecting_ahead`), else a new one."""
    with _opened_ahead_lock:
        waiting = _opened_ahead.get(url)
        future = waiting.pop(0) if waiting else None
    return future.result() if future is not None else _connect(url)


def _adbc_stream(url: str, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches as the driver cuts them (about 4 MB), sliced to at most `batch_rows`; values
    the driver keeps opaque (such as numeric) arrive as their text, which `conform` parses.
    A result with a type the driver's built-in table lacks is read again, before any batch is
    taken, on a connection that knows the server's types."""
    with ExitStack() as stack:
        reader = _execute(stack, _connection(url), query)
        if _unresolved(reader.schema):
            stack.close()
            reader = _execute(stack, _connect(url, catalog=True), query)
        for batch in reader:
            batch = _without_extensions(batch)
            for start in range(0, batch.num_rows, batch_rows):
                yield batch.slice(start, batch_rows)


def _execute(stack: ExitStack, connection: Any, query: str) -> pa.RecordBatchReader:
    """Run `query` on `connection`; its batches. The connection and its cursor close with `stack`."""
    cursor = stack.enter_context(connection).cursor()
    stack.enter_context(cursor)
    cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(_ADBC_BATCH_BYTES)})
    cursor.execute(query)
    return cursor.fetch_record_batch()


def _without_extensions(batch: pa.RecordBatch) -> pa.RecordBatch:
    if not any(isinstance(field.type, pa.BaseExtensionType) for field in batch.schema):
        return batch
    columns = [column.storage if isinstance(column.type, pa.BaseExtensionType) else column for column in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
