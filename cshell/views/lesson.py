"""Lessons on screen: headers, narration, the reality notes, failures, the lesson list.

Everything here only builds renderables (or plain strings for what is typed
character by character); the runner prints them through ``ctx.out``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.constrain import Constrain
from rich.markdown import Markdown
from rich.padding import Padding
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

WIDTH = 100  # narration and headers: a readable line, whatever the terminal's width

WORDS = {
    "en": {
        "step": "Step", "reality": "On your machine today", "coming": "coming with issue #{n}",
        "coming_later": "not available yet", "needs_host": "needs {prog} on this machine",
        "skipped": "skipped: {why}", "would_run": "would run",
        "prompt": "step {i}/{n} done — Enter: next · b: again · s: shell · q: quit",
        "prompt_start": "Enter: begin · s: shell · q: quit",
        "prompt_end": "end of the lesson — Enter: clean up and leave · b: again · s: shell · q: quit leaving the containers",
        "pause": "(paused — Enter continues)", "shell": "a cshell prompt inside the lesson — Ctrl-D goes back to it",
        "back": "back in the lesson", "quit": "left as they are: {what}. `lesson reset {name}` removes them.",
        "done": "lesson finished: {steps} steps", "done_skipped": ", {k} waiting for features not built yet ({why})",
        "ff": "fast-forward", "cleanup": "cleaning up what the lesson made",
        "failed": "the lesson stopped", "leftovers": "removing what an earlier run of {name} left",
    },
    "zh": {
        "step": "第", "reality": "在你今天的机器上", "coming": "等待 issue #{n} 完成",
        "coming_later": "暂不可用", "needs_host": "本机需要 {prog}",
        "skipped": "跳过：{why}", "would_run": "将会运行",
        "prompt": "第 {i}/{n} 步完成 — 回车：下一步 · b：重做 · s：进入 shell · q：退出",
        "prompt_start": "回车：开始 · s：进入 shell · q：退出",
        "prompt_end": "课程结束 — 回车：清理并离开 · b：重做 · s：进入 shell · q：退出并保留容器",
        "pause": "（暂停 — 按回车继续）", "shell": "课程中的 cshell 提示符 — Ctrl-D 回到课程",
        "back": "回到课程", "quit": "保留了：{what}。`lesson reset {name}` 会删除它们。",
        "done": "课程完成：共 {steps} 步", "done_skipped": "，其中 {k} 步等待尚未完成的功能（{why}）",
        "ff": "快进", "cleanup": "清理课程创建的内容",
        "failed": "课程中止", "leftovers": "删除 {name} 上次运行留下的内容",
    },
}


def word(lang: str, key: str, **values: object) -> str:
    return WORDS.get(lang, WORDS["en"])[key].format(**values)


def subtitle(lang: str, steps: int, mode: str) -> str:
    if lang == "zh":
        how = {"read": "阅读速度", "step": "逐步（--step）", "fast": "快速（--fast）"}[mode]
        return f"共 {steps} 步 · 中文 · {how}"
    how = {"read": "reading speed", "step": "step by step (--step)", "fast": "fast (--fast)"}[mode]
    return f"{steps} step{'s' if steps != 1 else ''} · English · {how}"


def step_label(lang: str, index: int, total: int) -> str:
    return f"第 {index}/{total} 步" if lang == "zh" else f"Step {index}/{total}"


# -- the lesson as it runs -----------------------------------------------------------------------


def lesson_header(title: str, name: str, subtitle: str) -> RenderableType:
    body = Group(Text(title, style="bold"), Text(subtitle, style="dim"))
    return Constrain(Panel(body, title=name, title_align="left", border_style="cyan"), WIDTH)


def step_header(lang: str, index: int, total: int, title: str) -> RenderableType:
    return Constrain(Rule(Text(f"{step_label(lang, index, total)} · {title}", style="bold cyan"),
                          align="left", style="cyan"), WIDTH)


CJK_CHAR = "\u2e80-\u9fff"
CJK_PUNCT = "\u3000-\u303f\uff00-\uffef\u2018-\u201f\u2014\u2026"
SOFT_BREAK_CJK = re.compile(f"(?<=[{CJK_PUNCT}])\n(?=\\S)|(?<=[{CJK_CHAR}])\n(?=[{CJK_CHAR}{CJK_PUNCT}])")


def join_cjk_lines(text: str) -> str:
    """In Chinese, a line break inside a paragraph is no space (markdown would make it one)."""
    return SOFT_BREAK_CJK.sub("", text)


def narration(text: str, kind: str, lang: str) -> RenderableType:
    body = Markdown(join_cjk_lines(text) if lang == "zh" else text)
    if kind == "reality":
        return Constrain(Panel(body, title=word(lang, "reality"), title_align="left", border_style="yellow"), WIDTH)
    return Constrain(Padding(body, (0, 0, 0, 2)), WIDTH + 2)


def skipped(why: str, lang: str, commands: Sequence[str]) -> RenderableType:
    lines = [Text(f"⏭  {word(lang, 'skipped', why=why)}", style="yellow")]
    for line in commands:
        lines.append(Text(f"   ┊ {word(lang, 'would_run')}: {line}", style="dim"))
    return Group(*lines)


def variable(name: str, value: str) -> str:
    shown = value if len(value) <= 80 and "\n" not in value else value.splitlines()[0][:77] + "…"
    return f"  → ${name} = {shown}"


def fast_forward(lang: str, index: int, total: int, title: str) -> str:
    return f"⏩ {word(lang, 'ff')} {step_label(lang, index, total)} · {title}"


def summary(lang: str, steps: int, waiting: Sequence[str]) -> RenderableType:
    text = word(lang, "done", steps=steps)
    if waiting:
        text += word(lang, "done_skipped", k=len(waiting), why=", ".join(sorted(set(waiting))))
    return Text("✔ " + text, style="bold green")


# -- a failed expectation: a diff-like view of the output -------------------------------------------


def failure(where: str, check: str, command: str | None, output: str, marked: dict[int, str],
            message: str) -> RenderableType:
    """``marked``: output line index -> '-' (should not be there) or '~' (closest to what was wanted)."""
    parts: list[RenderableType] = [Text.assemble(("✗ ", "bold red"), (where, "bold"), "  ", (check, "red"))]
    if command:
        parts.append(Text(f"  after: {command}", style="dim"))
    parts.append(Text(f"  {message}", style="red"))
    lines = output.rstrip("\n").split("\n") if output.strip() else []
    parts.append(Text(f"  output ({len(lines)} line{'s' if len(lines) != 1 else ''}):", style="dim"))
    for i, line in enumerate(lines[:60]):
        mark = marked.get(i, " ")
        style = {"-": "red", "~": "yellow"}.get(mark, "")
        parts.append(Text(f"  {mark} │ {line}", style=style))
    if len(lines) > 60:
        parts.append(Text(f"    … {len(lines) - 60} more lines", style="dim"))
    if not lines:
        parts.append(Text("    (nothing)", style="dim"))
    return Constrain(Panel(Group(*parts), title="expectation failed", title_align="left", border_style="red"),
                     WIDTH + 20)


def closest_line(wanted: str, lines: Sequence[str]) -> int | None:
    """The output line most like the wanted text (regex punctuation ignored), if any is close."""
    bare = re.sub(r"\\[dwsbDWSB]|[\\^$.*+?()\[\]{}|]", "", wanted)
    best, score = None, 0.0
    for i, line in enumerate(lines):
        ratio = difflib.SequenceMatcher(None, bare, line.strip()).ratio()
        if ratio > score:
            best, score = i, ratio
    return best if score >= 0.4 else None


# -- lesson ls -----------------------------------------------------------------------------------------


def lessons_table(rows: Sequence[tuple[str, str, int, str]]) -> Table:
    """rows: (name, title, number of steps, what some steps wait for)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("NAME", "TITLE", "STEPS", "WAITING FOR"):
        table.add_column(column, no_wrap=column != "TITLE")
    for name, title, steps, waiting in rows:
        table.add_row(name, title, str(steps), waiting or "-")
    return table


def command_prompt(host: bool, color: bool) -> str:
    """What precedes a command as it is shown: `cshell> ` or, for a host command, `host$ `."""
    if host:
        return "\x1b[1;35mhost$\x1b[0m " if color else "host$ "
    return "\x1b[1;32mcshell>\x1b[0m " if color else "cshell> "
