"""Entry point: `cshell` (REPL), `cshell CMD ARGS` (one shot), `-c "A; B"`, `--script FILE`.

Imports stay minimal here: a one-shot `cshell run` must not pay for rich or
prompt_toolkit (each command imports what it needs when it runs).
"""

from __future__ import annotations

import os
import sys

from cshell import __version__

USAGE = """usage: cshell [--root DIR] [--explain] [COMMAND [ARGS...] | -c "CMD; CMD" | --script FILE [LESSON OPTIONS]]

With no command, cshell opens its interactive shell. `cshell help` lists the commands.
  --root DIR       state root (default $CSHELL_ROOT or /var/lib/cshell)
  --explain        show the syscalls and mounts each command makes
  -c "CMD; CMD"    run commands separated by ';'
  --script FILE    run a script or a lesson: a .cs path, or a shipped lesson's name (lesson08)
  --version        print the version
lesson options (with --script; `help lesson` describes the format):
  --step           wait for a key after each step: Enter next, b again, s shell, q quit
  --fast           no pauses at all (CI); the default waits at reading speed
  --from STEP      start at a step (its number or words of its title); earlier steps run unseen
  --lang zh|en     the narration's language (default: from LANG / LC_ALL)
  --typing         show each command as if typed
  --parity docker  run each container command through Docker too and compare (Docker must be running)"""

LESSON_FLAGS = ("--step", "--fast", "--typing")
LESSON_VALUES = ("--from", "--lang", "--parity")


def _parse_globals(argv: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    opts: dict[str, str | bool] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        name, eq, inline = word.partition("=")
        if name in ("--root", "-c", "--script", *LESSON_VALUES):
            if eq:
                opts[name] = inline
            elif i + 1 < len(argv):
                i += 1
                opts[name] = argv[i]
            else:
                raise SystemExit(f"cshell: {name} needs a value\n{USAGE}")
        elif word == "--explain" or word in LESSON_FLAGS:
            opts[word] = True
        elif word in ("-h", "--help"):
            opts["--help"] = True
        elif word == "--version":
            opts["--version"] = True
        elif word.startswith("-"):
            raise SystemExit(f"cshell: unknown option {word}\n{USAGE}")
        else:
            break
        i += 1
    return opts, argv[i:]


def main(argv: list[str] | None = None) -> int:
    from cshell.engine.state import StateRoot, ensure_std_fds

    ensure_std_fds()
    opts, words = _parse_globals(sys.argv[1:] if argv is None else argv)
    if opts.get("--version"):
        print(f"cshell {__version__}")
        return 0
    if os.geteuid() != 0 and not _root_free(opts, words):
        _become_root()  # returns only when sudo cannot do it without a password
    if opts.get("--help"):
        print(USAGE)
        return 0

    import cshell.commands  # noqa: F401 - registers the commands
    from cshell.commands.context import Context
    from cshell.commands.dispatch import run_line, run_words, split_commands
    from cshell.errors import CShellError
    from cshell.views.console import Output

    out = Output()
    if "--script" not in opts and any(k in opts for k in (*LESSON_FLAGS, *LESSON_VALUES)):
        raise SystemExit(f"cshell: {next(k for k in opts if k in (*LESSON_FLAGS, *LESSON_VALUES))} "
                         f"goes with --script FILE\n{USAGE}")
    interactive = not (words or "-c" in opts or "--script" in opts)
    from cshell.shell.script import ScriptRunner

    ctx = Context(StateRoot(opts.get("--root") or None), out, interactive=interactive,  # type: ignore[arg-type]
                  scripts=ScriptRunner())
    ctx.explain = bool(opts.get("--explain"))
    if os.geteuid() == 0 and ctx.root.containers.is_dir():
        for problem in ctx.runtime.reconcile().errors:  # one line each; the command still runs
            out.note(f"reconcile: {problem}")

    if "-c" in opts:
        status = 0
        try:
            lines = split_commands(str(opts["-c"]))
        except CShellError as e:
            out.error(e)
            return 1
        for line in lines:
            status = run_line(ctx, line)
            if ctx.wants_exit:
                break
        return status
    if "--script" in opts:
        from cshell.shell.script import run_script

        return run_script(ctx, str(opts["--script"]), _lesson_options(opts))
    if words:
        return run_words(ctx, words)
    from cshell.shell.repl import run_repl

    return run_repl(ctx)


SUDO_GROUP = "cshell"  # scripts/provision.sh: its members may run cshell as root through sudo
KEPT_ENV = ("CSHELL_ROOT", "CSHELL_CONFIG", "CSHELL_OFFLINE", "DOCKER_CONFIG", "CSHELL_DOCKER_ETC", "LANG", "LC_ALL", "TERM", "COLUMNS", "LINES",
            "NO_COLOR")


def _root_free(opts: dict[str, str | bool], words: list[str]) -> bool:
    """What a user may do without root: --help, --version, `help ...`."""
    return bool(opts.get("--help") or opts.get("--version") or (words[:1] == ["help"]))


def _become_root() -> None:
    """Run this same command again as root through sudo, if sudo allows it without a password.

    Namespaces, mounts and cgroups are root's tools, so cshell runs as root, like
    the Docker daemon. Docker lets a user reach its root daemon through the docker
    group; cshell's equivalent is sudo: a user with passwordless sudo (the Vagrant
    VM's `vagrant`), or a member of the cshell group that provisioning allows to
    run exactly this program as root. Either is root-equivalent, as the docker
    group is. Anyone else keeps running unprivileged and is told how to get there.
    """
    import shutil
    import subprocess

    sudo = shutil.which("sudo")
    program = os.path.realpath(sys.argv[0])
    if sudo is None or os.environ.get("CSHELL_NO_SUDO") or not os.path.isfile(program):
        return
    asked = subprocess.run([sudo, "-n", "-l", program], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
    if asked.returncode != 0:  # a password would be needed, or no rule allows it
        return
    kept = [k for k in KEPT_ENV if k in os.environ]
    env_arg = [f"--preserve-env={','.join(kept)}"] if kept else []
    os.execv(sudo, [sudo, "-n", *env_arg, program, *sys.argv[1:]])


def _lesson_options(opts: dict[str, str | bool]):  # noqa: ANN202 - a cshell.shell.lesson.Options
    from cshell.shell.lesson import Options, default_lang

    if opts.get("--step") and opts.get("--fast"):
        raise SystemExit("cshell: --step and --fast do not go together")
    mode = "step" if opts.get("--step") else "fast" if opts.get("--fast") else "read"
    lang = str(opts.get("--lang") or default_lang())
    start = opts.get("--from")
    parity = opts.get("--parity")
    return Options(mode=mode, start=str(start) if start else None, lang=lang, typing=bool(opts.get("--typing")),
                   parity=str(parity) if parity else None)
