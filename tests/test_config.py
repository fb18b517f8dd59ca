"""Configuration: one source of truth, validated, with flag > config file > preset > default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from strotss_video.config import (
    Config,
    StrotssConfig,
    available_presets,
    build_config,
    flag_overrides,
    load_preset,
)
from strotss_video.errors import ConfigError


def test_defaults_are_the_reference_values() -> None:
    cfg = StrotssConfig()
    assert (cfg.max_size, cfg.scales, cfg.iters) == (512, 4, 250)
    assert (cfg.output_points, cfg.style_points, cfg.pyramid_levels) == (1024, 5000, 5)
    assert (cfg.lr, cfg.final_lr, cfg.alpha_base) == (2e-3, 1e-3, 16.0)
    assert cfg.scale_sizes() == [64, 128, 256, 512]
    assert StrotssConfig(max_size=1024, scales=5).scale_sizes() == [64, 128, 256, 512, 1024]


def test_precedence_flag_over_file_over_preset(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("strotss:\n  iters: 7\n  max_size: 96\n")
    cfg = build_config("test", f, flag_overrides({"iters": 3, "seed": None}))
    preset = load_preset("test")["strotss"]
    assert cfg.strotss.iters == 3  # flag
    assert cfg.strotss.max_size == 96  # file
    assert cfg.strotss.output_points == preset["output_points"]  # preset
    assert cfg.strotss.pyramid_levels == 5  # default
    assert cfg.runtime.seed == 0  # None means "not given"


@pytest.mark.parametrize("name", available_presets())
def test_every_preset_is_valid(name: str) -> None:
    assert isinstance(build_config(name), Config)


def test_yaml_dump_round_trips() -> None:
    cfg = build_config("preview")
    again = build_config(None, None, yaml.safe_load(cfg.to_yaml()))
    assert again == cfg


@pytest.mark.parametrize("text, needle", [
    ("strotss:\n  itres: 3\n", "unknown config key strotss.itres"),
    ("audio:\n  crf: 3\n", "unknown config section"),
    ("video:\n  crf: 99\n", "video.crf"),
    ("temporal:\n  flow: farneback\n", "temporal.flow"),
    ("temporal:\n  long_term: [0, 10]\n", "temporal.long_term"),
    ("strotss:\n  iters: -5\n", "must be positive"),
    ("strotss:\n  iters: many\n", "must be int"),
    ("strotss:\n  iters: true\n", "boolean"),
    ("strotss:\n  content_weight: -1\n", ">= 0"),
    ("temporal:\n  warm_lr: fast\n", "must be float"),
    ("temporal:\n  repaint_rate: 0\n", "temporal.repaint_rate"),
    ("strotss:\n  max_size: 8\n  scales: 1\n", "below 16 px"),
    ("runtime:\n  device: tpu\n", "runtime.device"),
    ("runtime:\n  cudnn_benchmark: sometimes\n", "runtime.cudnn_benchmark"),
    ("runtime:\n  precision: off\n", "runtime.precision"),
    ("runtime:\n  allocator: jemalloc\n", "runtime.allocator"),
    ("- a\n- b\n", "expected a mapping"),
    ("strotss: [1, 2\n", "not valid YAML"),
])
def test_bad_config_files_are_one_line_errors(tmp_path: Path, text: str, needle: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        build_config(None, f)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_exponent_floats_without_a_dot_are_floats(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) reads 3e-4 as the string "3e-4"; users write it that way anyway.
    f = tmp_path / "c.yaml"
    f.write_text("temporal:\n  warm_lr: 3e-4\nstrotss:\n  lr: 2E-3\n")
    cfg = build_config(None, f)
    assert cfg.temporal.warm_lr == 3e-4 and cfg.strotss.lr == 2e-3


def test_yaml_on_off_mean_the_on_off_choices(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) reads on/off/yes/no/true/false as booleans.
    f = tmp_path / "c.yaml"
    f.write_text("runtime:\n  cuda_graphs: off\n  cudnn_benchmark: no\n")
    cfg = build_config(None, f)
    assert cfg.runtime.cuda_graphs == "off" and cfg.runtime.cudnn_benchmark == "off"
    f.write_text("runtime:\n  cudnn_benchmark: final\n")
    assert build_config(None, f).runtime.cudnn_benchmark == "final"


def test_unknown_preset_and_setting() -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config("nope")
    with pytest.raises(ConfigError, match="unknown setting"):
        flag_overrides({"iterations": 3})


def test_configs_are_frozen() -> None:
    cfg = StrotssConfig()
    with pytest.raises(AttributeError):
        cfg.iters = 3  # type: ignore[misc]


def test_precision_fast_is_a_valid_setting_from_flag_and_file(tmp_path: Path) -> None:
    assert build_config(None, None, flag_overrides({"precision": "fast"})).runtime.precision \
        == "fast"
    f = tmp_path / "fast.yaml"
    f.write_text("runtime:\n  precision: fast\n")
    assert build_config(None, f).runtime.precision == "fast"


@pytest.mark.parametrize("section, key", [("temporal", "warm_lr"), ("temporal", "weight"),
                                          ("strotss", "content_weight"),
                                          ("temporal", "adaptive_iters")])
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_non_finite_values_are_refused_from_yaml(tmp_path: Path, section: str, key: str,
                                                 value: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"{section}:\n  {key}: {value}\n")
    with pytest.raises(ConfigError, match=f"{section}.{key} must be"):
        build_config(config_file=path)


def test_yaml_aliases_are_refused_before_they_expand(tmp_path: Path) -> None:
    rows = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        rows.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ConfigError, match=r"aliases \(\*name\) are not supported \(line 2\)"):
        build_config(config_file=path)


def test_error_messages_quote_a_bounded_piece_of_a_value(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("runtime:\n  device: " + "x" * 100_000 + "\n")
    with pytest.raises(ConfigError) as info:
        build_config(config_file=path)
    assert len(str(info.value)) < 200 and str(info.value).count("x") <= 80
