"""Pure code: the command grammar, `-c` splitting and `--format` templates."""

from __future__ import annotations

import pytest

import cshell.commands  # noqa: F401 - registers the commands
from cshell.commands.dispatch import split_commands, split_words
from cshell.commands.registry import REGISTRY, lookup, parse
from cshell.errors import UsageError
from cshell.views.template import render


def parsed(line: str):  # noqa: ANN201 - (Command, SimpleNamespace)
    cmd, rest = lookup(split_words(line))
    return cmd, parse(cmd, rest)


# -- lookup ----------------------------------------------------------------------------------


def test_lookup_one_and_two_word_commands() -> None:
    assert lookup(["ps", "-a"]) == (REGISTRY["ps"], ["-a"])
    assert lookup(["ns", "join", "web"]) == (REGISTRY["ns join"], ["web"])


def test_lookup_unknown_suggests() -> None:
    with pytest.raises(UsageError) as e:
        lookup(["psx"])
    assert "psx" in e.value.message and "`ps`" in e.value.hint
    with pytest.raises(UsageError) as e:
        lookup(["zzzzzz"])
    assert "did you mean" not in e.value.hint and "help" in e.value.hint


def test_lookup_group_needs_a_sub_command() -> None:
    with pytest.raises(UsageError) as e:
        lookup(["ns", "frob"])
    assert "'frob'" in e.value.message and "ls" in e.value.hint and "join" in e.value.hint
    with pytest.raises(UsageError):
        lookup([])


# -- parse -----------------------------------------------------------------------------------


def test_run_defaults() -> None:
    _, a = parsed("run busybox")
    assert (a.image, a.cmd, a.detach, a.interactive, a.tty, a.rm, a.name, a.env, a.workdir) == \
        ("busybox", [], False, False, False, False, None, [], None)


def test_bundled_short_flags() -> None:
    _, a = parsed("run -it busybox sh")
    assert a.interactive and a.tty and not a.detach and a.cmd == ["sh"]
    _, a = parsed("run -dit busybox")
    assert a.detach and a.interactive and a.tty


def test_bundle_with_a_value_flag_is_not_a_bundle() -> None:
    with pytest.raises(UsageError) as e:
        parsed("run -dw /x busybox")
    assert "-dw" in e.value.message


def test_values_inline_or_separate_and_repeated() -> None:
    _, a = parsed("run --name=web -e A=1 --env B=2 --env=C=3 -w /srv --hostname=box busybox")
    assert a.name == "web" and a.env == ["A=1", "B=2", "C=3"] and a.workdir == "/srv" and a.hostname == "box"
    _, a = parsed("run --name web busybox")
    assert a.name == "web"


def test_everything_after_the_image_is_the_command() -> None:
    _, a = parsed("run -d busybox sh -c 'echo $HOME; ls -l' --name x -it")
    assert a.image == "busybox" and a.detach
    assert a.cmd == ["sh", "-c", "echo $HOME; ls -l", "--name", "x", "-it"]
    assert a.name is None and not a.tty


def test_double_dash() -> None:
    _, a = parsed("ns join web --ns net -- ip -o link")
    assert (a.target, a.ns, a.cmd) == ("web", "net", ["ip", "-o", "link"])
    _, a = parsed("exec web -- ls -l")
    assert (a.container, a.cmd) == ("web", ["ls", "-l"])
    _, a = parsed("run -d -- busybox -x")  # `--` ends the flags; the image is still the image
    assert a.detach and (a.image, a.cmd) == ("busybox", ["-x"])
    _, a = parsed("rm -f -- -odd-name")
    assert a.force and a.containers == ["-odd-name"]


def test_many_positionals() -> None:
    _, a = parsed("rm -f a b c")
    assert a.force and a.containers == ["a", "b", "c"]
    _, a = parsed("ns ls")
    assert a.targets == []


@pytest.mark.parametrize("line, message", [
    ("ps --bogus", "unknown flag --bogus"),
    ("run --detatch busybox", "unknown flag --detatch"),
    ("run --name", "--name needs a value"),
    ("run -d=1 busybox", "-d takes no value"),
    ("run", "needs IMAGE"),
    ("exec web", "needs CMD"),
    ("rm", "needs at least one CONTAINERS"),
    ("logs a b", "extra argument 'b'"),
])
def test_parse_errors(line: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        parsed(line)
    assert message in e.value.message and e.value.hint


def test_unknown_flag_suggests_the_close_one() -> None:
    with pytest.raises(UsageError) as e:
        parsed("run --detatch busybox")
    assert "--detach" in e.value.hint


def test_usage_line() -> None:
    assert REGISTRY["run"].usage == "run [OPTIONS] IMAGE [CMD ...]"
    assert REGISTRY["ns join"].usage == "ns join [OPTIONS] TARGET CMD ..."


# -- split_commands (-c) and split_words ----------------------------------------------------


@pytest.mark.parametrize("text, lines", [
    ("ps", ["ps"]),
    ("run -d --name a busybox sleep 100; ps", ["run -d --name a busybox sleep 100", "ps"]),
    ("a;b", ["a", "b"]),
    ("a ;; b ;", ["a", "b"]),
    ("  ;  ", []),
    ("run busybox sh -c 'echo a; echo b'; ps", ["run busybox sh -c 'echo a; echo b'", "ps"]),
    ('run busybox echo "x;y"', ["run busybox echo 'x;y'"]),
    ("run busybox echo '#not a comment'", ["run busybox echo '#not a comment'"]),
])
def test_split_commands(text: str, lines: list[str]) -> None:
    assert split_commands(text) == lines


def test_split_commands_round_trips_words() -> None:
    line, = split_commands("""run busybox sh -c 'echo "$HOME" $$; true'""")
    assert split_words(line) == ["run", "busybox", "sh", "-c", 'echo "$HOME" $$; true']


def test_unbalanced_quotes() -> None:
    with pytest.raises(UsageError):
        split_commands("run busybox echo 'oops")
    with pytest.raises(UsageError):
        split_words('echo "oops')


# -- templates (inspect --format) ----------------------------------------------------------------

DATA = {
    "Id": "abc", "Name": "/web",
    "State": {"Pid": 42, "Running": True, "Paused": False, "Error": ""},
    "Config": {"Cmd": ["sleep", "100"], "Entrypoint": None, "Labels": {"b": 2, "a": "x"}},
}


@pytest.mark.parametrize("template, out", [
    ("{{.State.Pid}}", "42"),
    ("{{ .Name }}", "/web"),
    ("pid={{.State.Pid}} name={{.Name}}!", "pid=42 name=/web!"),
    ("{{.State.Running}} {{.State.Paused}}", "true false"),
    ("{{.Config.Cmd}}", "[sleep 100]"),
    ("{{json .Config.Cmd}}", '["sleep","100"]'),  # Go's json: compact
    ("{{json .State.Running}}", "true"),
    ("{{.Config.Entrypoint}}", "<no value>"),
    ("{{json .Config.Entrypoint}}", "null"),
    ("{{.Config.Labels}}", "map[a:x b:2]"),
    ("[{{.State.Error}}]", "[]"),
    ("no actions", "no actions"),
])
def test_render(template: str, out: str) -> None:
    assert render(template, DATA) == out


def test_render_whole_object() -> None:
    assert render("{{json .}}", {"a": [1]}) == '{"a":[1]}'


@pytest.mark.parametrize("template, needle", [("{{.Nope}}", "Nope"), ("{{.State.Pid.X}}", "X"),
                                              ("{{State}}", "State")])
def test_render_errors(template: str, needle: str) -> None:
    with pytest.raises(UsageError) as e:
        render(template, DATA)
    assert needle in e.value.message and e.value.hint
