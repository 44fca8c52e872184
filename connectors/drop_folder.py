"""A drop folder: which files are whole and may be read now, and which are still being written.

A file is read once it has stopped changing: its size and modification time have not moved for
`settle_seconds` (told by its modification time, or, where that lies ahead of this machine's
clock as on a share whose clock runs fast, by watching it unchanged that long), and no process
holds it open for writing where the platform tells (Linux: the links under /proc/<pid>/fd and
their flags in /proc/<pid>/fdinfo; only processes this user may inspect). A symbolic link is
followed only within the folder; one that points out of it is listed as such and never read.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


class Clock:
    """The present and the waiting of a run; tests give one that waits without waiting."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = Clock()


@dataclass(frozen=True)
class DropFile:
    """A file found in the folder: its size and modification time (of the file a link points to)."""

    path: Path
    size: int
    modified_ns: int
    outside: str | None = None  # a link out of the folder: where it points; the file is never opened

    @property
    def fingerprint(self) -> list[int]:
        return [self.size, self.modified_ns]


@dataclass(frozen=True)
class Waiting:
    """A file not to be read yet, why, and in how many seconds it may have settled (None: when its writer lets go)."""

    file: DropFile
    why: str
    settles_in: float | None


Seen = dict[Path, tuple[DropFile, float]]  # a file as last seen, and since when it has looked so


@dataclass
class Survey:
    """The folder at one moment: files to read (oldest first) and files to wait for."""

    ready: list[DropFile] = field(default_factory=list)
    waiting: list[Waiting] = field(default_factory=list)
    seen: Seen = field(default_factory=dict)  # to give the next survey, so that a file can be watched settle


def listed(folder: Path, glob: str, suffixes: Iterable[str] | None = None) -> list[DropFile]:
    """Regular files matching `glob` (and, if given, with one of `suffixes`, in any case), and links to them."""
    inside = folder.resolve()
    wanted = None if suffixes is None else {suffix.lower() for suffix in suffixes}
    found = []
    for path in folder.glob(glob):
        if wanted is not None and path.suffix.lower() not in wanted:
            continue
        try:
            link = path.lstat()
            target = path.resolve() if stat.S_ISLNK(link.st_mode) or path.parent.resolve() != inside else None
            if target is not None and not target.is_relative_to(inside):
                found.append(DropFile(path, 0, link.st_mtime_ns, outside=str(target)))
                continue
            status = path.stat() if target is not None else link
        except OSError:  # gone meanwhile, or a link to nothing
            continue
        if stat.S_ISREG(status.st_mode):
            found.append(DropFile(path, status.st_size, status.st_mtime_ns))
    return found


def survey(
    folder: Path,
    glob: str,
    suffixes: Iterable[str] | None,
    settle_seconds: float,
    now: float,
    seen: Seen | None = None,
) -> Survey:
    """Which files may be read at `now` (seconds since the epoch); `seen` is the last survey's `seen`."""
    files = listed(folder, glob, suffixes)
    result = Survey()
    writers = {} if settle_seconds == 0 else open_for_writing([file.path for file in files if not file.outside])
    for file in files:
        earlier, since = (seen or {}).get(file.path, (None, now))
        since = since if earlier == file else now
        if file.outside or settle_seconds == 0:
            result.ready.append(file)
        elif file.path in writers:
            result.waiting.append(Waiting(file, f"open for writing by process {writers[file.path]}", None))
            result.seen[file.path] = (file, since)
        else:
            age = now - file.modified_ns / 1e9
            watched = now - since
            if age >= settle_seconds or watched >= settle_seconds:
                result.ready.append(file)
                continue
            left = settle_seconds - (age if age >= 0 else watched)  # a time ahead of ours: watch it instead
            result.waiting.append(Waiting(file, f"changed {max(age, 0):.1f} s ago", left))
            result.seen[file.path] = (file, since)
    result.ready.sort(key=lambda file: (file.modified_ns, file.path.name))
    return result


def open_for_writing(paths: list[Path]) -> dict[Path, int]:
    """Which of `paths` a process holds open for writing, with the id of one such process.

    Linux only (elsewhere: none known); a process of another user is seen only by a user who may
    inspect it. The scan reads every open file of every process once, however many paths are asked.
    """
    if not paths or not sys.platform.startswith("linux"):
        return {}
    wanted = {os.path.realpath(path): path for path in paths}
    found: dict[Path, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # gone, or not ours to look at
            continue
        for descriptor in descriptors:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
            except OSError:
                continue
            if target in wanted and _writes(pid, descriptor):
                found[wanted[target]] = int(pid)
    return found


def _writes(pid: str, descriptor: str) -> bool:
    """Whether the descriptor was opened for writing: the access mode in the octal `flags:` of its fdinfo."""
    try:
        with open(f"/proc/{pid}/fdinfo/{descriptor}", encoding="ascii") as info:
            for line in info:
                if line.startswith("flags:"):
                    return int(line.split()[1], 8) & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR)
    except (OSError, ValueError):
        pass
    return False
