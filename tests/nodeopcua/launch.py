"""Install and start the node-opcua test server (server.js in this folder) from Python.

node-opcua comes from the npm registry, at the exact version that package.json and
package-lock.json pin, installed with `npm ci` into node_modules/ here (ignored by git) the
first time it is needed and again whenever the lock file changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from plantlake.simulator.process import stop

FOLDER = Path(__file__).resolve().parent
READY = "plantlake-nodeopcua ready "
_INSTALLED = FOLDER / "node_modules" / ".plantlake-lock-sha256"


class NodeUnavailable(RuntimeError):
    """Node.js or npm is missing, or the packages could not be installed."""


def install() -> None:
    """node-opcua at the pinned version in node_modules/, installed by `npm ci` unless already there."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise NodeUnavailable(
            f"{' and '.join(missing)} not found: the node-opcua tests need Node.js 18 or newer with npm "
            "(Debian/Ubuntu: apt-get install nodejs npm)"
        )
    lock = hashlib.sha256((FOLDER / "package-lock.json").read_bytes()).hexdigest()
    if _INSTALLED.is_file() and _INSTALLED.read_text() == lock:
        return
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=FOLDER,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise NodeUnavailable(f"npm ci in {FOLDER} failed: {done.stderr.strip()[-2000:]}")
    _INSTALLED.write_text(lock)


@dataclass(frozen=True)
class Server:
    endpoint: str
    process: subprocess.Popen


@contextlib.contextmanager
def serving(port: int, *options: str, timeout_s: float = 600) -> Iterator[Server]:
    """Run server.js on `port` with `options` until the block ends; yields it once it listens."""
    with tempfile.TemporaryDirectory(prefix="plantlake-nodeopcua-") as folder:
        log = Path(folder) / "server.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                # a larger young generation: encoding answers makes many short-lived objects
                ["node", "--max-semi-space-size=64", str(FOLDER / "server.js"), "--port", str(port), *options],
                cwd=FOLDER,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:
            yield Server(_wait_until_ready(process, log, timeout_s), process)
        finally:
            stop(process)


def _wait_until_ready(process: subprocess.Popen, log: Path, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith(READY):
                return line[len(READY) :].strip()
        if process.poll() is not None:
            raise RuntimeError(f"the node-opcua server exited with {process.returncode}:\n{text[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"the node-opcua server did not say it was ready within {timeout_s} s:\n{text[-3000:]}")


def served(path: Path) -> dict:
    """What the server wrote with `--served`: its start and, per tag, every value with its timestamps and status."""
    return json.loads(path.read_text(encoding="utf-8"))
