"""The command-line reference (docs/cli.md), rendered from the argparse parser itself.

``python -m strotss_video.clidoc > docs/cli.md`` writes it; a test fails when the file is
stale, so the reference always says what the parser accepts."""

from __future__ import annotations

import argparse
import sys

from .cli import PROG, build_parser

_HEADER = f"""# Command-line reference

Generated from the parser by `python -m strotss_video.clidoc > docs/cli.md`; do not edit it
by hand. `{PROG} INPUT STYLE OUTPUT` is short for `{PROG} video INPUT STYLE OUTPUT`.
An option not given takes the preset's value, else the built-in default (docs/tuning.md says
why each default is what it is). Every error a user can cause ends with one line on stderr and exit code 2 (usage) or
1 (failure).
"""


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _sentence(text: str) -> str:
    text = text.strip()
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = action.metavar
    if action.choices is not None and metavar is None:
        metavar = "|".join(str(c) for c in action.choices)
    if isinstance(metavar, tuple):
        metavar = " ".join(metavar)
    takes_value = action.nargs != 0
    names = ", ".join(action.option_strings)
    return f"`{names} {metavar or action.dest.upper()}`" if takes_value else f"`{names}`"


def _group_table(title: str, actions: list[argparse.Action]) -> list[str]:
    rows = [a for a in actions if not isinstance(a, argparse._HelpAction)]
    if not rows:
        return []
    lines = [f"**{title}**", "", "| option | meaning |", "|---|---|"]
    lines += [f"| {_cell(_flags(a))} | {_cell(a.help or '')} |" for a in rows]
    return [*lines, ""]


def _positionals(parser: argparse.ArgumentParser) -> str:
    names = [str(a.metavar or a.dest) for a in parser._actions if not a.option_strings]
    return " ".join(names)


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The Markdown reference of every subcommand: usage, description, options by group."""
    parser = parser or build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in subparsers._choices_actions}
    out = [_HEADER]
    for name, sub in subparsers.choices.items():
        out += [f"## `{PROG} {name}`", "", _sentence(helps.get(name) or ""), ""]
        out += ["```", f"{PROG} {name} {_positionals(sub)} [options]".replace("  ", " "), "```", ""]
        if sub.description:
            out += [" ".join(sub.description.split()), ""]
        for group in sub._action_groups:
            title = "arguments" if group.title == "positional arguments" else (group.title or "")
            title = "options" if title == "optional arguments" else title
            out += _group_table(title, group._group_actions)
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
