"""``--help`` shows a docstring's paragraphs as prose, whatever the source's line length."""

from __future__ import annotations

import pytest

from cdb.cli import helptext
from cdb.cli.app import main


def test_wrapped_lines_of_a_paragraph_are_joined() -> None:
    text = """Summary.

    Uses throwaway databases, dropped
    after. Targets: none.

    Second paragraph
    on two lines.
    """
    assert helptext.reflow(text) == (
        "Summary.\n\nUses throwaway databases, dropped after. Targets: none.\n\n"
        "Second paragraph on two lines."
    )


def test_list_items_keep_their_lines_and_their_continuations_join() -> None:
    text = "Modes:\n- one, which\n  wraps\n- two\n1. first\n2) second"
    assert helptext.reflow(text) == "Modes:\n- one, which wraps\n- two\n1. first\n2) second"


def test_indented_examples_and_marked_paragraphs_stay_as_written() -> None:
    text = "Example:\n    cdb replay --from 0\n    cdb replay --to 5\nthen more.\n\n\bkeep\nthis"
    assert helptext.reflow(text) == (
        "Example:\n    cdb replay --from 0\n    cdb replay --to 5\nthen more.\n\n\bkeep\nthis"
    )


def test_text_after_the_help_cut_is_kept_unchanged() -> None:
    assert helptext.reflow("Shown\ntext.\f\nhidden\nlines") == "Shown text.\f\nhidden\nlines"


def test_cli_help_shows_a_wrapped_docstring_as_one_sentence(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide enough that rich does not wrap the line itself.
    monkeypatch.setenv("COLUMNS", "300")
    main(["bench", "project", "--help"])
    out = capsys.readouterr().out
    assert "key namespaces, dropped after. Targets:" in out
