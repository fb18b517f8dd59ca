"""Product files describe the product as it is: a current CLI reference, no build history."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# What counts as a product file: what a user reads or runs. History lives in git log and
# CHANGELOG.md; benchmark result files are data with their own dates.
_PRODUCT_GLOBS = ("README.md", "docs/**/*.md", "strotss_video/**/*.py", "strotss_video/**/*.yaml",
                  "scripts/**/*", "benchmarks/**/*.py", "benchmarks/**/*.md", "Makefile")
_HISTORY = re.compile(
    r"\bsessions? ?-?\d|\bsession-\d|\bthis session\b|\b(?:earlier|later) sessions?\b"
    r"|\bon (?:a|this) (?:slow|slower|normal|faster) day\b"
    r"|\bwas (?:tried|measured) (?:on|in) \d", re.IGNORECASE)


def _product_files() -> list[Path]:
    found = {p for pattern in _PRODUCT_GLOBS for p in REPO.glob(pattern) if p.is_file()}
    return sorted(p for p in found if "__pycache__" not in p.parts and p.suffix != ".pyc")


def test_cli_reference_is_generated_from_the_parser() -> None:
    from strotss_video.clidoc import render
    assert (REPO / "docs" / "cli.md").read_text(encoding="utf-8") == render(), \
        "docs/cli.md is stale: run `python -m strotss_video.clidoc > docs/cli.md`"


def test_product_files_carry_no_build_history() -> None:
    hits = []
    for path in _product_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _HISTORY.search(line):
                hits.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not hits, ("product files describe what the product is now; history goes to git log "
                      "and CHANGELOG.md:\n" + "\n".join(hits[:40]))


def test_readme_stays_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 320, f"README.md has {lines} lines; reference material belongs in docs/"
