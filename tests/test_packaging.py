"""The built wheel works outside the repository: package data (presets) included."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, unpacked into a fresh target directory."""
    root = tmp_path_factory.mktemp("wheel")
    dist, target = root / "dist", root / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
                    str(REPO)], check=True, capture_output=True, text=True, cwd=root)
    wheel = next(dist.glob("strotss_video-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "strotss_video/presets/preview.yaml" in names, names
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True, cwd=root)
    return target


def _run_installed(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # The unpacked wheel first on the path: it wins over any checkout of the package.
    env["PYTHONPATH"] = str(target)
    return subprocess.run([sys.executable, *args], cwd=target.parent, env=env,
                          capture_output=True, text=True, timeout=120)


def test_wheel_lists_and_loads_every_preset(installed_wheel: Path) -> None:
    from strotss_video.config import available_presets
    repo_presets = available_presets()
    code = ("import strotss_video, strotss_video.config as c; "
            "print(strotss_video.__file__); print(' '.join(c.available_presets())); "
            "[c.build_config(p) for p in c.available_presets()]")
    proc = _run_installed(installed_wheel, "-c", code)
    assert proc.returncode == 0, proc.stderr
    where, names = proc.stdout.splitlines()
    assert Path(where).is_relative_to(installed_wheel)
    assert names.split() == repo_presets and "preview" in repo_presets


def test_wheel_cli_prints_the_preview_preset(installed_wheel: Path) -> None:
    proc = _run_installed(installed_wheel, "-m", "strotss_video", "video", "--preset", "preview",
                          "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert "max_size: 256" in proc.stdout
