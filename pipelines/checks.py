"""`plantlake check`: the YAML against every live source, one line per source and table."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import sqlalchemy as sa

from plantlake.assets.erp import columns_to_land
from plantlake.assets.gold import buildable_models
from plantlake.assets.opcua import credentials
from plantlake.config import ErpSource, LogSource, OpcuaSource, PlantlakeConfig, SupplierSource
from plantlake.config.models import load_models
from plantlake.connectors import drop_folder, opcua, opcua_stream, sql
from plantlake.lake.layout import Lake


@dataclass(frozen=True)
class Finding:
    """What `check` found for one source or table: ok, or what is wrong and how to fix it."""

    source: str
    item: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _guarded(source: str, item: str, probe: Callable[[], str]) -> Finding:
    """Run `probe` (which returns what it found); any error becomes the finding's detail."""
    try:
        return Finding(source, item, True, probe())
    except Exception as error:  # every failure is a finding: the check goes on with the next source
        return Finding(source, item, False, f"{type(error).__name__}: {error}")


def _erp(source: ErpSource) -> Iterator[Finding]:
    engine = sa.create_engine(source.url)
    try:
        connected = _guarded(f"erp:{source.name}", "connection", lambda: _connect(engine))
        yield connected
        if not connected.ok:
            return
        for table in source.tables:

            def probe(table=table) -> str:
                reflected = sql.reflect_table(engine, table.name)
                return f"{len(columns_to_land(reflected, table))} columns to land"

            yield _guarded(f"erp:{source.name}", table.name, probe)
    finally:
        engine.dispose()


def _connect(engine: sa.Engine) -> str:
    with engine.connect():
        return f"connected ({engine.dialect.name})"


def _opcua(source: OpcuaSource) -> Finding:
    def probe() -> str:
        session = opcua_stream.Session(source.endpoint, source.timeout_s, 0, source.backoff_s, credentials(source))
        try:
            client = session.connect()
            tags = session.loop.run(opcua.discover_tags(client, source.roots, describe=False))
        finally:
            session.close()
        if not tags:
            raise ValueError(f"no historized variable below {source.roots}: check `roots` (e.g. '2:Plant')")
        return f"{len(tags)} historized tags below {', '.join(source.roots)}"

    return _guarded(f"opcua:{source.name}", source.endpoint, probe)


def _folder(kind: str, source: LogSource | SupplierSource) -> Finding:
    def probe() -> str:
        if not source.path.is_dir():
            raise FileNotFoundError(f"{source.path} is not a folder: create it or fix `path`")
        if isinstance(source, SupplierSource):  # as the landing lists a drop folder: its suffixes, no links out
            found = [file.path for file in drop_folder.listed(source.path, source.glob, source.suffixes)]
        else:
            found = [path for path in source.path.glob(source.glob) if path.is_file()]
        return f"{len(found)} files match {source.glob!r}"

    return _guarded(f"{kind}:{source.name}", str(source.path), probe)


def _lake(config: PlantlakeConfig) -> Finding:
    """The lake's root takes a write: a folder, or a bucket with the endpoint and keys of `lake.s3`."""

    def probe() -> str:
        lake = Lake.from_config(config.lake)
        marker = lake.root / f".plantlake-check-{uuid.uuid4().hex}"
        marker.write_text("plantlake check")
        marker.delete()
        return f"writable; {sum(1 for _ in lake.tables())} tables"

    return _guarded("lake", config.lake.root, probe)


def _gold(config: PlantlakeConfig) -> Iterator[Finding]:
    models = load_models(config.gold.models)
    built = {model.name for model, _ in buildable_models(config)}
    for model in models:
        detail = (
            f"{model.grain} windows keyed on {', '.join(model.key)}"
            if model.name in built
            else "not built: it reads a table no configured source fills"
        )
        yield Finding("gold", model.name, model.name in built, detail)


def check_sources(config: PlantlakeConfig) -> list[Finding]:
    """Every declared source and table, connected to and compared with the YAML."""
    found = [_lake(config)]
    for erp in config.sources.erp:
        found += _erp(erp)
    found += [_opcua(server) for server in config.sources.opcua]
    found += [_folder("logs", log) for log in config.sources.logs]
    found += [_folder("suppliers", supplier) for supplier in config.sources.suppliers]
    found += _guarded_gold(config)
    return found


def _guarded_gold(config: PlantlakeConfig) -> list[Finding]:
    try:
        return list(_gold(config))
    except Exception as error:
        return [Finding("gold", str(config.gold.models), False, f"{type(error).__name__}: {error}")]
