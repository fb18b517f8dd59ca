"""Running the real CLI in a subprocess, and checking its one-line errors (shared by tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREFIX = "strotss-video: error:"


def run_cli(*args: str | os.PathLike[str], cwd: Path | None = None,
            extra_env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m strotss_video ARGS`` in a fresh interpreter, importing this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("STROTSS_VGG_WEIGHTS", None)
    env["CUDA_VISIBLE_DEVICES"] = ""  # a GPU-less run, whatever machine this is
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "strotss_video", *map(str, args)],
                          cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` -> its bytes (None for directories)."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit ``code``, exactly one non-empty stderr line with our prefix, no traceback."""
    err = proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}, want {code}; stderr={err!r}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, f"want one stderr line, got {len(lines)}: {err!r}"
    assert lines[0].strip(), err
    assert lines[0].startswith(PREFIX), err
    assert err.endswith("\n")
    return lines[0]
