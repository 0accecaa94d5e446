"""Help text as ``--help`` shows it: a docstring's paragraphs reflowed, its lists kept.

Typer prints a command's help paragraphs after the first with every line break of the source,
so a docstring wrapped at the code's line length came out broken mid-sentence ("... dropped" /
"after."). Docstrings stay wrapped for the code's sake; :func:`reflow_tree` joins the lines of
each paragraph once, on the built command tree, before the command line is parsed.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Protocol

# A line that starts a list item keeps its own line (a bullet, or "1." / "2)").
_ITEM = re.compile(r"^(?:[-*\u2022]\s|\d+[.)]\s)")
# Four spaces or more: an example or a table, kept as written.
_VERBATIM = "    "
# Click's own marker for "do not rewrap this paragraph".
_NO_REWRAP = "\b"


def reflow(text: str) -> str:
    """``text`` with each paragraph's wrapped lines joined; list items, indented lines and
    paragraphs marked ``\\b`` keep their line breaks. Anything after ``\\f`` (click's "help
    ends here") is kept unchanged."""
    cleaned = inspect.cleandoc(text)
    shown, cut, hidden = cleaned.partition("\f")
    paragraphs = re.split(r"\n[ \t]*\n", shown)
    return "\n\n".join(_reflow_paragraph(p) for p in paragraphs) + cut + hidden


def _reflow_paragraph(paragraph: str) -> str:
    if paragraph.startswith(_NO_REWRAP):
        return paragraph
    lines: list[str] = []
    for line in paragraph.split("\n"):
        stripped = line.strip()
        starts_line = (
            not lines
            or _ITEM.match(stripped) is not None
            or line.startswith(_VERBATIM)
            or lines[-1].startswith(_VERBATIM)
        )
        if starts_line:
            lines.append(line.rstrip())
        else:
            lines[-1] = f"{lines[-1]} {stripped}"
    return "\n".join(lines)


class HelpNode(Protocol):
    """A command of the built tree (Typer ships its own click, so no click class is named)."""

    help: str | None


def reflow_tree(command: HelpNode) -> None:
    """Reflow the help of ``command`` and of every command below it, in place."""
    if command.help:
        command.help = reflow(command.help)
    subcommands: Mapping[str, HelpNode] = getattr(command, "commands", None) or {}
    for sub in subcommands.values():
        reflow_tree(sub)
