"""Batch manifests: parsed and validated into job specs with no torch imported, so the CLI
rejects a bad manifest at once (the format is described in :mod:`strotss_video.pipeline.batch`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from ..config import FLAG_FIELDS, Config, apply_overrides, build_config, flag_overrides, load_yaml
from ..errors import ConfigError, StrotssError
from ..io.paths import VIDEO_EXTENSIONS, check_output_path
from .spec import JobSpec, parse_bound

JOB_KEYS = {"input", "style", "output", "start", "end", "options", "shots", "name"}
OPTION_EXTRAS = {"preset", "config"}


def _fail(manifest: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{manifest.name}: {where}: {message}")


def _path(base: Path, value: Any, manifest: Path, where: str, must_exist: bool) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(manifest, where, "expected a file path")
    p = Path(value)  # no ~ or $VAR expansion: a manifest names files, it runs nothing
    p = p if p.is_absolute() else base / p
    if must_exist and not p.is_file():
        raise _fail(manifest, where, f"file not found: {p}; fix the path (relative to the "
                    "manifest's folder)")
    return p


def _options(raw: Any, manifest: Path, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _fail(manifest, where, "expected a mapping of options")
    out = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in FLAG_FIELDS and name not in OPTION_EXTRAS:
            raise _fail(manifest, f"{where}.{key}", "unknown option; use the CLI's long option "
                        "names (strotss-video --help)")
        out[name] = value
    return out


def _job_config(preset: str | None, config_file: Path | None,
                defaults: dict[str, Any], options: dict[str, Any], manifest: Path,
                base: Path, where: str) -> Config:
    merged = {**defaults, **options}
    preset = merged.pop("preset", preset)
    cfg_file = merged.pop("config", None)
    cfg_path = _path(base, cfg_file, manifest, f"{where}.config", True) if cfg_file else config_file
    try:
        return apply_overrides(build_config(preset, cfg_path), flag_overrides(merged), "options")
    except ConfigError as exc:
        raise _fail(manifest, where, str(exc)) from None


def load_manifest(path: str | os.PathLike[str], *, preset: str | None = None,
                  config_file: str | os.PathLike[str] | None = None) -> list[JobSpec]:
    """Parse and validate a manifest into job specs (no work is done)."""
    manifest = Path(path)
    data = load_yaml(manifest, "manifest", "pass an existing YAML file", "fix the manifest")
    if isinstance(data, list):
        data = {"jobs": data}
    if not isinstance(data, Mapping) or not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise ConfigError(f"{manifest.name}: expected a 'jobs:' list with at least one job")
    unknown = set(data) - {"jobs", "defaults"}
    if unknown:
        raise ConfigError(f"{manifest.name}: unknown top-level key {sorted(unknown)[0]!r}; "
                          "use jobs: and defaults:")
    base = manifest.resolve().parent
    defaults = _options(data.get("defaults"), manifest, "defaults")
    cfg_file = Path(config_file) if config_file is not None else None
    specs: list[JobSpec] = []
    outputs: dict[Path, str] = {}
    for n, job in enumerate(data["jobs"]):
        where = f"job {n}"
        if not isinstance(job, Mapping):
            raise _fail(manifest, where, "expected a mapping with input, style and output")
        if isinstance(job.get("input"), str):
            where = f"job {n} ({job['input']})"
        extra = set(job) - JOB_KEYS
        if extra:
            raise _fail(manifest, f"{where}.{sorted(extra)[0]}", "unknown field; a job has "
                        f"{', '.join(sorted(JOB_KEYS))}")
        for key in ("input", "style", "output"):
            if key not in job:
                raise _fail(manifest, where, f"missing field '{key}'")
        input_path = _path(base, job["input"], manifest, f"{where}.input", True)
        style = _path(base, job["style"], manifest, f"{where}.style", True)
        output = _path(base, job["output"], manifest, f"{where}.output", False)
        resolved = output.resolve()
        if resolved in outputs:
            raise _fail(manifest, f"{where}.output", f"same output as {outputs[resolved]}; give each job "
                        "its own output")
        outputs[resolved] = where
        try:
            check_output_path(output, [input_path, style], True, VIDEO_EXTENSIONS)
        except StrotssError as exc:
            raise _fail(manifest, f"{where}.output", str(exc)) from None
        options = _options(job.get("options"), manifest, f"{where}.options")
        config = _job_config(preset, cfg_file, defaults, options, manifest, base, where)
        try:
            start = parse_bound(job.get("start"), "start")
            end = parse_bound(job.get("end"), "end")
        except StrotssError as exc:
            raise _fail(manifest, f"{where}.start/end", str(exc)) from None
        shot_styles: dict[int, Path] = {}
        for k, entry in enumerate(job.get("shots") or []):
            at = f"{where}.shots[{k}]"
            if not isinstance(entry, Mapping) or set(entry) != {"index", "style"}:
                raise _fail(manifest, at, "expected {index: N, style: FILE}")
            index = entry["index"]
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise _fail(manifest, f"{at}.index", "expected a shot number >= 0")
            shot_styles[index] = _path(base, entry["style"], manifest, f"{at}.style", True)
        name = str(job.get("name") or input_path.name)
        specs.append(JobSpec(input=input_path, style=style, output=output, config=config,
                             start=start, end=end, shot_styles=shot_styles, name=name))
    return specs
