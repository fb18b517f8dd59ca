"""Batch manifests: parsed and validated into job specs with no torch imported, so the CLI
rejects a bad manifest at once (the format is described in :mod:`strotss_video.pipeline.batch`).

No job may write a file that any job reads (or the manifest, or a config file), whatever the
job order. With ``sandbox``, a manifest received from someone else reaches only into its own
folder: every file it names (inputs, styles, outputs, ``config:`` files, presets named by a
path, VGG16 weights, cut files) and the work directory must resolve inside it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import (
    FLAG_FIELDS,
    PRESET_DIR,
    Config,
    apply_overrides,
    available_presets,
    build_config,
    flag_overrides,
    load_yaml,
)
from ..errors import ConfigError, StrotssError, quote
from ..io.paths import VIDEO_EXTENSIONS, check_output_path
from .layout import default_work_root
from .spec import JobSpec, Labelled, check_work_root, check_writes, parse_bound, same_file

JOB_KEYS = {"input", "style", "output", "start", "end", "options", "shots", "name"}
OPTION_EXTRAS = {"preset", "config"}
SANDBOX_WORK_DIR = ".strotss-work"
"""The work directory under the manifest's folder when ``--sandbox`` is given no --work-dir."""


@dataclass(frozen=True)
class _Manifest:
    path: Path
    base: Path  # its folder, resolved: relative paths start here
    sandbox: bool


def _fail(manifest: Path, where: str, message: str) -> ConfigError:
    return ConfigError(f"{manifest.name}: {where}: {message}")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder)


def _confine(m: _Manifest, path: Path, where: str) -> None:
    if m.sandbox and not _inside(path, m.base):
        raise _fail(m.path, where, f"{path} is outside the manifest's folder {m.base}; "
                    "--sandbox allows only files inside it")


def _path(m: _Manifest, value: Any, where: str, must_exist: bool) -> Path:
    if not isinstance(value, str) or not value:
        raise _fail(m.path, where, "expected a file path")
    p = Path(value)  # no ~ or $VAR expansion: a manifest names files, it runs nothing
    p = p if p.is_absolute() else m.base / p
    _confine(m, p, where)
    if must_exist and not p.is_file():
        raise _fail(m.path, where, f"file not found: {p}; fix the path (relative to the "
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


def _confine_options(m: _Manifest, options: dict[str, Any], where: str) -> None:
    """--sandbox: the files that options name (read from the current folder or the package's
    presets) stay inside the manifest's folder; a preset named by name is always fine."""
    preset = options.get("preset")
    if isinstance(preset, str) and ("/" in preset or os.sep in preset) and \
            m.sandbox and not _inside(PRESET_DIR / f"{preset}.yaml", m.base):
        raise _fail(m.path, f"{where}.preset", f"{quote(preset)} names a file outside the "
                    "manifest's folder; --sandbox allows preset names "
                    f"({', '.join(available_presets())}) and files inside it")
    for name in ("vgg_weights", "shots"):
        value = options.get(name)
        if isinstance(value, str) and value not in ("auto", "none"):
            _confine(m, Path(value), f"{where}.{name}")


def _job_config(m: _Manifest, preset: str | None, config_file: Path | None,
                defaults: dict[str, Any], options: dict[str, Any], where: str,
                overrides: Mapping[str, Any]) -> tuple[Config, Path | None]:
    """The job's configuration and the config file it read: preset < config file < the
    manifest's defaults < the job's options < ``overrides`` (the command line's)."""
    merged = {**defaults, **options}
    _confine_options(m, merged, where)
    preset = merged.pop("preset", preset)
    cfg_file = merged.pop("config", None)
    cfg_path = _path(m, cfg_file, f"{where}.config", True) if cfg_file else config_file
    try:
        config = apply_overrides(build_config(preset, cfg_path), flag_overrides(merged),
                                 "options")
    except ConfigError as exc:
        raise _fail(m.path, where, str(exc)) from None
    return apply_overrides(config, flag_overrides(overrides), "command line"), cfg_path


def _shot_styles(m: _Manifest, raw: Any, where: str) -> dict[int, Path]:
    shot_styles: dict[int, Path] = {}
    for k, entry in enumerate(raw or []):
        at = f"{where}.shots[{k}]"
        if not isinstance(entry, Mapping) or set(entry) != {"index", "style"}:
            raise _fail(m.path, at, "expected {index: N, style: FILE}")
        index = entry["index"]
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise _fail(m.path, f"{at}.index", "expected a shot number >= 0")
        shot_styles[index] = _path(m, entry["style"], f"{at}.style", True)
    return shot_styles


def _job(m: _Manifest, n: int, job: Any, preset: str | None, config_file: Path | None,
         defaults: dict[str, Any], overrides: Mapping[str, Any]) -> tuple[JobSpec, Labelled]:
    """One job's spec, and the files it reads (labelled for messages)."""
    where = f"job {n}"
    if not isinstance(job, Mapping):
        raise _fail(m.path, where, "expected a mapping with input, style and output")
    if isinstance(job.get("input"), str):
        where = f"job {n} ({job['input']})"
    extra = set(job) - JOB_KEYS
    if extra:
        raise _fail(m.path, f"{where}.{sorted(extra)[0]}", "unknown field; a job has "
                    f"{', '.join(sorted(JOB_KEYS))}")
    for key in ("input", "style", "output"):
        if key not in job:
            raise _fail(m.path, where, f"missing field '{key}'")
    input_path = _path(m, job["input"], f"{where}.input", True)
    style = _path(m, job["style"], f"{where}.style", True)
    output = _path(m, job["output"], f"{where}.output", False)
    try:
        check_writes([(output, "output")], [(input_path, "an input"), (style, "a style image")])
        check_output_path(output, [], True, VIDEO_EXTENSIONS)
    except StrotssError as exc:
        raise _fail(m.path, f"{where}.output", str(exc)) from None
    options = _options(job.get("options"), m.path, f"{where}.options")
    config, cfg_path = _job_config(m, preset, config_file, defaults, options, where, overrides)
    try:
        start = parse_bound(job.get("start"), "start")
        end = parse_bound(job.get("end"), "end")
    except StrotssError as exc:
        raise _fail(m.path, f"{where}.start/end", str(exc)) from None
    shot_styles = _shot_styles(m, job.get("shots"), where)
    reads = [(input_path, f"an input of job {n}"), (style, f"a style image of job {n}")]
    reads += [(p, f"a style image of job {n}") for p in shot_styles.values()]
    if cfg_path is not None:
        reads.append((cfg_path, f"a config file of job {n}"))
    name = str(job.get("name") or input_path.name)
    spec = JobSpec(input=input_path, style=style, output=output, config=config, start=start,
                   end=end, shot_styles=shot_styles, name=name)
    return spec, reads


def _check_outputs(m: _Manifest, specs: list[JobSpec], wheres: list[str],
                   reads: Labelled) -> None:
    """Outputs distinct, and none of them a file that any job (or the manifest) reads."""
    for n, spec in enumerate(specs):
        assert spec.output is not None
        for k in range(n):
            if same_file(spec.output, specs[k].output):  # type: ignore[arg-type]
                raise _fail(m.path, f"{wheres[n]}.output", f"same output as {wheres[k]}; give "
                            "each job its own output")
        try:
            check_writes([(spec.output, "output")], reads)
        except StrotssError as exc:
            raise _fail(m.path, f"{wheres[n]}.output", str(exc)) from None


def _load(path: str | os.PathLike[str], preset: str | None,
          config_file: str | os.PathLike[str] | None, overrides: Mapping[str, Any],
          sandbox: bool) -> tuple[_Manifest, list[JobSpec], Labelled]:
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
    m = _Manifest(manifest, manifest.resolve().parent, sandbox)
    defaults = _options(data.get("defaults"), manifest, "defaults")
    cfg_file = Path(config_file) if config_file is not None else None
    reads: list[tuple[Path, str]] = [(manifest, "the manifest")]
    if cfg_file is not None:
        reads.append((cfg_file, "the --config file"))
    specs, wheres = [], []
    for n, job in enumerate(data["jobs"]):
        spec, job_reads = _job(m, n, job, preset, cfg_file, defaults, overrides)
        specs.append(spec)
        reads += job_reads
        wheres.append(f"job {n} ({job['input']})" if isinstance(job.get("input"), str)
                      else f"job {n}")
    _check_outputs(m, specs, wheres, reads)
    return m, specs, reads


def load_manifest(path: str | os.PathLike[str], *, preset: str | None = None,
                  config_file: str | os.PathLike[str] | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  sandbox: bool = False) -> list[JobSpec]:
    """Parse and validate a manifest into job specs (no work is done). ``overrides`` are flat
    settings (the CLI's long names) applied to every job over its own options."""
    return _load(path, preset, config_file, overrides or {}, sandbox)[1]


def batch_work_root(manifest: str | os.PathLike[str],
                    work_dir: str | os.PathLike[str] | None, sandbox: bool) -> Path:
    """``work_dir`` if given, else with ``sandbox`` the manifest folder's ``.strotss-work``,
    else the default work root."""
    if work_dir is not None:
        return Path(work_dir)
    return Path(manifest).resolve().parent / SANDBOX_WORK_DIR if sandbox else default_work_root()


def preflight_batch(path: str | os.PathLike[str], *, preset: str | None = None,
                    config_file: str | os.PathLike[str] | None = None,
                    overrides: Mapping[str, Any] | None = None,
                    stats: str | os.PathLike[str] | None = None,
                    work_root: str | os.PathLike[str] | None = None,
                    sandbox: bool = False) -> list[JobSpec]:
    """Every check a batch makes before any work: the manifest (:func:`load_manifest`), the
    stats file (a new .json in a writable folder that nothing reads), and the work root
    (:func:`batch_work_root`; with ``sandbox`` it must lie inside the manifest's folder)."""
    m, specs, reads = _load(path, preset, config_file, overrides or {}, sandbox)
    outputs = [(s.output, f"the output of job {n}") for n, s in enumerate(specs)
               if s.output is not None]
    if stats is not None:
        check_writes([(Path(stats), "stats file")], [*reads, *outputs])
        check_output_path(Path(stats), [], True, (".json",), what="stats file")
    root = batch_work_root(path, work_root, sandbox)
    if sandbox and not _inside(root, m.base):
        raise ConfigError(f"work directory {root} is outside the manifest's folder {m.base}; "
                          f"with --sandbox pass a --work-dir inside it (default "
                          f"{SANDBOX_WORK_DIR})")
    check_work_root(root, [p for p, _ in [*reads, *outputs]] +
                    ([Path(stats)] if stats is not None else []))
    return specs
