"""Where the lake's bytes live: a folder on this machine, or a prefix in an S3-compatible bucket.

`Location` is what the lake layer passes around for a table or a file. It joins and names
like a `Path` (`/`, `.name`, `.parent`); it tells delta-rs how to reach it (`uri`,
`storage_options`), and it reads and writes the few plain files the lake keeps beside its
tables (state documents, Parquet staged for a commit) through Arrow's filesystems, which
speak both.

Concurrent writers on S3 need no lock of ours: delta-rs commits with a conditional put
(put-if-absent), which the store refuses to a second writer of the same version. A plain
file written here is one upload, which S3 makes visible whole when it ends: a reader sees
the old document or the new one, never half of either.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.fs as pafs
from fsspec.implementations.arrow import ArrowFSWrapper  # type: ignore[import-untyped]

# what the lake's functions take for a place: a Location, or a local path as text or Path
Where: TypeAlias = "Location | str | os.PathLike[str]"
# the object stores this process was configured with, by bucket: DuckDB reads a table's files by
# their URIs, which name the bucket but not the endpoint or the credentials
_KNOWN_BUCKETS: dict[str, tuple[tuple[str, str], ...]] = {}


@dataclass(frozen=True, order=True)
class Location:
    """A table or file of the lake: an absolute local path, or `s3://bucket/key` with its store's options."""

    uri: str
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, where: str | os.PathLike[str] | Location, options: Mapping[str, str] | None = None) -> Location:
        """A location from a path (made absolute) or an `s3://` URI with the store's delta-rs options (AWS_*)."""
        if isinstance(where, Location):
            return where
        text = os.fspath(where)
        if "://" not in text:
            return cls(str(Path(text).absolute()))
        scheme, bucket = urlsplit(text).scheme, urlsplit(text).netloc
        if scheme not in ("s3", "s3a") or not bucket:
            raise ValueError(f"lake location {text!r}: expected a local folder or s3://bucket/prefix")
        kept = tuple(sorted((key, value) for key, value in (options or {}).items() if value))
        if kept:  # a location made without the store's options must not forget them for DuckDB
            _KNOWN_BUCKETS[bucket] = kept
        return cls("s3://" + text.split("://", 1)[1].rstrip("/"), kept)

    def __str__(self) -> str:
        return self.uri

    def __fspath__(self) -> str:
        """A local location is a path for `open`, `Path` and the like; an object has none."""
        return str(self.path)

    def __truediv__(self, part: str) -> Location:
        joined = str(Path(self.uri) / part) if self.is_local else f"{self.uri}/{part}"
        return Location(joined, self.options)

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        return Location(self.uri.rstrip("/").rsplit("/", 1)[0], self.options)

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri

    @property
    def path(self) -> Path:
        """The local path; an object store's location has none."""
        if not self.is_local:
            raise ValueError(f"{self.uri} is in object storage, not on this machine's disk")
        return Path(self.uri)

    @property
    def storage_options(self) -> dict[str, str] | None:
        """What delta-rs needs to reach the location (None on local disk)."""
        return dict(self.options) if self.options else None

    def _fs(self) -> tuple[pafs.FileSystem, str]:
        if self.is_local:
            return pafs.LocalFileSystem(), self.uri
        return s3_filesystem(self.options), self.uri.split("://", 1)[1]

    def exists(self) -> bool:
        filesystem, path = self._fs()
        return bool(filesystem.get_file_info(path).type != pafs.FileType.NotFound)

    def read_text(self) -> str:
        """The file's text; FileNotFoundError if there is none."""
        filesystem, path = self._fs()
        try:
            with filesystem.open_input_stream(path) as stream:
                return bytes(stream.read()).decode("utf-8")
        except FileNotFoundError:
            raise
        except OSError as error:
            if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
                raise FileNotFoundError(self.uri) from error
            raise

    def write_text(self, text: str) -> None:
        """Replace the file whole: a local file by rename, an object by one upload (it appears when complete)."""
        if self.is_local:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f".{self.name}.{uuid.uuid4().hex}")
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, self.path)
            return
        filesystem, path = self._fs()
        with filesystem.open_output_stream(path) as stream:
            stream.write(text.encode("utf-8"))

    def make_folder(self) -> None:
        """Create the folder on local disk (object storage has no folders to create)."""
        if self.is_local:
            self.path.mkdir(parents=True, exist_ok=True)

    def open_output(self) -> pa.NativeFile:
        """A stream that writes the file (for Parquet staged to a table's folder)."""
        filesystem, path = self._fs()
        if self.is_local:
            return pa.OSFile(path, "wb")
        return filesystem.open_output_stream(path)

    def open_input(self) -> pa.NativeFile:
        """A random-access reader of the file (a Parquet footer, say)."""
        filesystem, path = self._fs()
        return filesystem.open_input_file(path)

    def copy_to(self, target: Location) -> None:
        """Put this file's bytes at `target` without passing them through this process.

        On disk a hard link (a second name for the same bytes; removing either name keeps the
        other), or a copy where the filesystem has none; in a bucket a copy the store makes itself.
        Meant for immutable files, such as a Delta table's Parquet.
        """
        if self.is_local and target.is_local:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.path, target.path)
            except OSError:
                shutil.copyfile(self.path, target.path)
            return
        if self.is_local != target.is_local or self.options != target.options:
            raise ValueError(f"cannot copy {self.uri} to {target.uri}: they are not in the same store")
        filesystem, path = self._fs()
        filesystem.copy_file(path, target._fs()[1])

    def delete(self) -> None:
        filesystem, path = self._fs()
        filesystem.delete_file(path)

    def children(self) -> list[Location]:
        """What the folder holds, one level down, sorted (nothing for a folder that is not there)."""
        filesystem, path = self._fs()
        found = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        return sorted(self / info.base_name for info in found)

    def is_folder(self) -> bool:
        filesystem, path = self._fs()
        return bool(filesystem.get_file_info(path).type == pafs.FileType.Directory)

    def file_sizes(self) -> Iterator[int]:
        """The size of every file under the folder."""
        filesystem, path = self._fs()
        for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True)):
            if info.type == pafs.FileType.File:
                yield int(info.size or 0)


@functools.lru_cache(maxsize=8)
def s3_filesystem(options: tuple[tuple[str, str], ...]) -> pafs.S3FileSystem:
    """Arrow's S3 filesystem for the same store delta-rs reaches with `options`."""
    settings = dict(options)
    endpoint = settings.get("AWS_ENDPOINT_URL", "")
    return pafs.S3FileSystem(
        access_key=settings.get("AWS_ACCESS_KEY_ID"),
        secret_key=settings.get("AWS_SECRET_ACCESS_KEY"),
        region=settings.get("AWS_REGION", "us-east-1"),
        endpoint_override=endpoint.split("://", 1)[-1] or None,
        scheme="http" if endpoint.startswith("http://") else "https",
    )


def attach(connection: duckdb.DuckDBPyConnection, uri: str) -> None:
    """Let DuckDB read `s3://` files of a store this process knows, through Arrow's S3 client.

    DuckDB's own S3 support is an extension it downloads on first use; an on-prem machine
    may have no way out, so the files are read through the same client the lake writes with.
    """
    if urlsplit(uri).scheme not in ("s3", "s3a") or "s3" in connection.list_filesystems():
        return
    bucket = urlsplit(uri).netloc
    if bucket not in _KNOWN_BUCKETS:
        raise ValueError(f"{uri}: no object store configured for bucket {bucket!r} (lake.root and lake.s3)")
    connection.register_filesystem(_S3Files(s3_filesystem(_KNOWN_BUCKETS[bucket])))


class _S3Files(ArrowFSWrapper):
    """Arrow's S3 client as the fsspec filesystem DuckDB calls for `s3://` paths."""

    protocol = "s3"
