"""Parity mode on screen: one line under each mirrored command, a table at the end.

Builds renderables only; the lesson runner prints them. The rows come from
``cshell.shell.parity`` (duck-typed here: a view imports no shell module).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

WORDS = {
    "en": {"same": "same under Docker", "differs": "differs under Docker", "status": "(exit status)",
           "none": "Docker has no equivalent of `{what}` (step {step}): cshell only",
           "title": "cshell and Docker, step by step", "removed": "removed from Docker what the run made: {what}",
           "total": "{n} commands compared: {same} the same, {diff} different",
           "known": "{n} of them listed in `help differences` ({rows})", "listed": "listed as {row} in `help differences`"},
    "zh": {"same": "与 Docker 相同", "differs": "与 Docker 不同", "status": "（退出码）",
           "none": "Docker 没有 `{what}` 的对应命令（第 {step} 步）：只在 cshell 中",
           "title": "cshell 与 Docker 逐步对比", "removed": "已从 Docker 中删除本次运行创建的：{what}",
           "total": "共比较 {n} 条命令：{same} 条相同，{diff} 条不同",
           "known": "其中 {n} 条是 `help differences` 里列出的差异（{rows}）", "listed": "见 `help differences` 的 {row}"},
}


def word(lang: str, key: str, **values: object) -> str:
    return WORDS.get(lang, WORDS["en"])[key].format(**values)


def row_line(row: Any, lang: str) -> Text:
    """`  docker: same under Docker · 0.21 s here, 0.43 s there` (or the first difference)."""
    times = f" · {row.cshell.seconds:.2f} s / {row.docker.seconds:.2f} s"
    if row.same:
        what = word(lang, "same") + (" " + word(lang, "status") if row.compared == "status" else "")
        return Text.assemble(("  ≡ docker: ", "green"), (what, "green"), (times, "dim"))
    known = getattr(row, "known", "")
    if known:  # a deliberate difference: name its row so the student can read why
        return Text.assemble((f"  ≠ {known} docker: ", "cyan"),
                             (f"{word(lang, 'differs')}, {word(lang, 'listed', row=known)}: {row.why}", "cyan"),
                             (times, "dim"))
    return Text.assemble(("  ≠ docker: ", "yellow"), (f"{word(lang, 'differs')}: {row.why}", "yellow"),
                         (times, "dim"))


def unmirrored_line(what: str, step: int, lang: str) -> Text:
    return Text("  · " + word(lang, "none", what=what, step=step), style="dim")


def summary(rows: Sequence[Any], lang: str) -> Table:
    caption = word(lang, "total", n=len(rows), same=sum(r.same for r in rows), diff=sum(not r.same for r in rows))
    known = [r.known for r in rows if not r.same and getattr(r, "known", "")]
    if known:
        rows_named = ", ".join(sorted(set(known), key=lambda d: int(d[1:])))
        caption += "; " + word(lang, "known", n=len(known), rows=rows_named)
    table = Table(title=word(lang, "title"), title_justify="left", caption=caption, caption_justify="left")
    for name, justify in (("step", "right"), ("commands", "right"), ("same", "right"), ("different", "right"),
                          ("cshell s", "right"), ("docker s", "right"), ("ratio", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for step in sorted({r.step for r in rows}):
        mine = [r for r in rows if r.step == step]
        here = sum(r.cshell.seconds for r in mine)
        there = sum(r.docker.seconds for r in mine)
        differ = sum(not r.same for r in mine)
        table.add_row(str(step), str(len(mine)), str(len(mine) - differ),
                      Text(str(differ), style="yellow" if differ else ""), f"{here:.2f}", f"{there:.2f}",
                      f"{here / there:.2f}" if there else "-")
    return table
