"""The distribution installs one top-level package, `plantlake`, and nothing with a generic name."""

import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).parents[2]
FOLDERS = ("config", "connectors", "lake", "quality", "assets", "pipelines", "simulator")


def test_pip_install_puts_only_plantlake_in_site_packages(tmp_path: Path) -> None:
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", str(REPO), "-w", str(tmp_path / "wheel")], check=True)
    (wheel,) = (tmp_path / "wheel").glob("plantlake-*.whl")
    clean = tmp_path / "venv"
    venv.create(clean, with_pip=False)  # nothing in it but what the wheel brings
    python = clean / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)

    where = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.check_output([str(python), "-c", where], text=True).strip())
    top_level = {path.name for path in site.iterdir() if not path.name.endswith((".dist-info", "__pycache__"))}
    assert top_level == {"plantlake"}
    assert sorted(path.name for path in (site / "plantlake").iterdir()) == sorted(FOLDERS)
    assert {"plantlake-sim"} <= {path.name for path in (clean / "bin").iterdir()}

    # the venv has no dependencies: import the lake's package itself, and find every other one
    script = (
        "import importlib.util, plantlake.lake; print(plantlake.lake.__file__); "
        f"print(all(importlib.util.find_spec('plantlake.' + name) for name in {FOLDERS!r}))"
    )
    imported = subprocess.run([str(python), "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    where_lake, all_found = imported.stdout.split()
    assert Path(where_lake).is_relative_to(site) and all_found == "True"
