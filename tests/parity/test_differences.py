"""docs/differences.md is the one table of deliberate differences: every parity case marked as a
difference names one of its rows, every row is shown by `help differences`, ids run D1, D2, ..."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import REPO, run_cshell

from parity import test_parity, test_parity_cmds

TABLE = REPO / "docs" / "differences.md"


def rows() -> list[str]:
    return re.findall(r"^\| (D\d+) \|", TABLE.read_text(), re.M)


def test_rows_are_numbered_in_order() -> None:
    assert rows() == [f"D{i}" for i in range(1, len(rows()) + 1)]


def test_every_marked_case_names_a_row_and_every_row_has_a_case() -> None:
    tables = [v for module in (test_parity, test_parity_cmds) for v in vars(module).values()
              if isinstance(v, dict) and v and all(isinstance(c, test_parity.Case) for c in v.values())]
    marked = {c.diff for table in tables for c in table.values() if c.diff}
    assert marked <= set(rows()), f"cases name rows the table lacks: {marked - set(rows())}"
    assert set(rows()) <= marked, f"rows no parity case shows: {set(rows()) - marked}"


def test_help_shows_the_table(tmp_path: Path) -> None:
    proc = run_cshell(tmp_path, "help", "differences")
    assert proc.returncode == 0, proc.stderr
    for row in rows():
        assert row in proc.stdout, row
    assert "differences.md" in (REPO / "README.md").read_text()
