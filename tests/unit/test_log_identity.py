"""File identity that never mixes two files: a short file waits for its fingerprint, and a file that
was deleted and recreated, truncated, copied or rewritten is never read from another file's offset."""

from __future__ import annotations

import gzip
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest
from log_lake import Logs

pytestmark = pytest.mark.unit

BANNER = "# HMI-7 runtime 4.2.1 -- log format 3 -- UTF-8 ---\n"  # what the HMI writes first, every start
assert len(BANNER) == 51


def _entries(first: int, count: int, text: str = "Tür offen") -> str:
    return "".join(
        f"<134>1 2026-01-11T06:{n // 60:02d}:{n % 60:02d}Z hmi-7 hmi 1 - - {text} {n}\n"
        for n in range(first, first + count)
    )


def _landed(logs: Logs) -> Counter:
    return Counter(event["raw"] for event in logs.bronze())


def _lines(*texts: str) -> Counter:
    return Counter(line for text in texts for line in text.splitlines())


def test_a_recreated_log_with_the_same_short_banner_loses_nothing(tmp_path: Path) -> None:
    logs = Logs(tmp_path, fingerprint_bytes=1024)
    log = logs.folder / "hmi.log"
    log.write_text(BANNER, encoding="utf-8")
    metadata = logs.land("run-1")
    assert _landed(logs) == Counter() and metadata["files_waiting"] == 1  # 51 bytes: no fingerprint yet

    first = BANNER + _entries(0, 30)
    log.unlink()
    log.write_text(first, encoding="utf-8")  # the HMI restarted: a new file with the same banner
    logs.land("run-2")
    assert _landed(logs) == _lines(first)

    second = BANNER + _entries(100, 18, "Neustart")
    log.unlink()
    log.write_text(second, encoding="utf-8")  # shorter than the offset the first one was read to
    assert 1024 <= len(second.encode()) < len(first.encode())
    logs.land("run-3")
    third = BANNER + _entries(200, 40, "Neustart")
    log.unlink()
    log.write_text(third, encoding="utf-8")  # longer than it: same name, another inode
    logs.land("run-4")
    assert _landed(logs) == _lines(first, second, third)
    assert all(event["parse_error"] is None for event in logs.bronze() if event["raw"] != BANNER.strip())


def test_a_file_rewritten_in_place_with_the_same_head_is_a_new_file(tmp_path: Path) -> None:
    """Same name, same inode (as when a deleted file's inode is reused), same first kilobyte: the
    bytes before the committed offset no longer match, so it is read from its start."""
    logs = Logs(tmp_path, fingerprint_bytes=64)
    log = logs.folder / "hmi.log"
    first = BANNER + _entries(0, 20)
    log.write_text(first, encoding="utf-8")
    logs.land("run-1")
    inode = log.stat().st_ino
    second = BANNER + _entries(0, 1) + _entries(500, 30, "anders")
    with log.open("r+", encoding="utf-8") as handle:
        handle.write(second)
        handle.truncate()
    assert log.stat().st_ino == inode and log.stat().st_size > len(first.encode())
    logs.land("run-2")
    assert _landed(logs) == _lines(first, second)


def test_copytruncate_reads_the_copy_on_and_the_truncated_file_from_its_start(tmp_path: Path) -> None:
    logs = Logs(tmp_path, fingerprint_bytes=1024)
    log = logs.folder / "app.log"
    before, after, later = _entries(0, 30), _entries(30, 12), _entries(42, 50)
    log.write_text(before, encoding="utf-8")
    logs.land("run-1")
    with log.open("a", encoding="utf-8") as handle:
        handle.write(after)
    shutil.copyfile(log, logs.folder / "app.log.1")  # logrotate copytruncate: copy, then truncate in place
    with log.open("r+", encoding="utf-8") as handle:
        handle.truncate(0)
    log.write_text(later, encoding="utf-8")  # grown past the old offset before the next run
    logs.land("run-2")
    assert _landed(logs) == _lines(before, after, later)
    (logs.folder / "app.log.2.gz").write_bytes(gzip.compress((logs.folder / "app.log.1").read_bytes()))
    os.unlink(logs.folder / "app.log.1")
    shutil.copyfile(log, logs.folder / "app.log.1")
    with log.open("r+", encoding="utf-8") as handle:
        handle.truncate(0)
    metadata = logs.land("run-3")
    assert metadata["events_inserted"] == 0 and _landed(logs) == _lines(before, after, later)


def test_a_short_file_waits_until_it_holds_its_fingerprint_but_a_short_rotated_file_is_read(tmp_path: Path) -> None:
    logs = Logs(tmp_path, fingerprint_bytes=1024)
    live = logs.folder / "app.log"
    live.write_text(_entries(0, 3), encoding="utf-8")
    assert logs.land("run-1")["files_waiting"] == 1 and _landed(logs) == Counter()
    live.rename(logs.folder / "app.log.1")  # rotated: it will not grow, so its whole content is its fingerprint
    live.write_text(_entries(3, 2), encoding="utf-8")
    logs.land("run-2")
    assert _landed(logs) == _lines(_entries(0, 3))
    (logs.folder / "app.log.2.gz").write_bytes(gzip.compress((logs.folder / "app.log.1").read_bytes()))
    os.unlink(logs.folder / "app.log.1")
    live.rename(logs.folder / "app.log.1")
    metadata = logs.land("run-3")
    assert metadata["events_inserted"] == 2 and _landed(logs) == _lines(_entries(0, 5))
