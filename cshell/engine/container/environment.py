"""A container's environment variables: -e, --env-file, and the merge with the image's Env.

Docker's rules: `-e K=V` as given, `-e K` copies K from the caller's environment
(and is dropped when K is unset there); an env file holds one variable a line,
`#` comment lines and blank lines skipped, leading blanks trimmed, the value kept
exactly (quotes included). Everything is checked before a container is made: an
empty name, or a NUL byte execve(2) cannot carry, is refused with a one-line message.
"""

from __future__ import annotations

import os

from cshell.errors import UsageError, printable

WHITESPACE = " \t"  # what docker refuses inside a name in an env file
ENV_FILE_MAX = 1 << 20  # bytes; the kernel's limit for a whole environment is 2 MiB or less
FORM_HINT = "the form is KEY=VALUE, or KEY alone to copy KEY from this shell's environment"


def check_variable(item: str) -> None:
    """Docker's ValidateEnv (no empty name), plus the NUL that no C string can hold."""
    if "\0" in item:
        raise UsageError(f"invalid environment variable '{printable(item)}': it contains a NUL byte",
                         "execve(2) passes C strings, which end at NUL: remove it")
    if not item.partition("=")[0]:
        raise UsageError(f"invalid environment variable: {printable(item)}", "a variable needs a name: " + FORM_HINT)


def expand_env(items: list[str]) -> list[str]:
    """-e K=V as given; -e K takes K from the shell's environment, as docker does."""
    out = []
    for item in items:
        check_variable(item)
        if "=" in item:
            out.append(item)
        elif item in os.environ:
            out.append(f"{item}={os.environ[item]}")
    return out


def read_env_file(path: str) -> list[str]:
    """docker's --env-file format, as K=V items; any bad line refuses the whole file."""
    data = _read_bounded(path)
    out = []
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = _decode(raw.removesuffix(b"\r"), path, number)
        if number == 1:
            line = line.removeprefix("\ufeff")  # the BOM some editors write
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        key, has_value, value = line.partition("=")
        if "\0" in line:
            raise _bad_line(path, number, f"variable '{printable(key)}' contains a NUL byte")
        if any(c in WHITESPACE for c in key):
            raise _bad_line(path, number, f"variable '{printable(key)}' contains whitespaces")
        if not key:
            raise _bad_line(path, number, f"no variable name on line '{printable(line)}'")
        if has_value:
            out.append(f"{key}={value}")
        elif key.strip() in os.environ:  # KEY alone: copied from here, as with -e KEY
            out.append(f"{key.strip()}={os.environ[key.strip()]}")
    return out


def user_env(env_files: list[str], env: list[str]) -> list[str]:
    """What the user asked for, in docker's order: the files first, then -e (later wins)."""
    return [*(item for path in env_files for item in read_env_file(path)), *expand_env(env)]


def merge_env(*layers: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for layer in layers:
        for item in layer:
            key = item.split("=", 1)[0]
            merged[key] = item
    return list(merged.values())


def _read_bounded(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(ENV_FILE_MAX + 1)
    except OSError as e:
        raise UsageError(f"cannot read env file {path}: {(e.strerror or str(e)).lower()}",
                         "--env-file takes a text file of KEY=VALUE lines: check the path") from None
    if len(data) > ENV_FILE_MAX:
        raise UsageError(f"env file {path} is larger than {ENV_FILE_MAX >> 20} MiB",
                         "an env file holds KEY=VALUE lines; is this the right file?")
    return data


def _decode(raw: bytes, path: str, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"env file {path} contains invalid utf8 bytes at line {number}",
                         "save the file as UTF-8 text") from None


def _bad_line(path: str, number: int, what: str) -> UsageError:
    return UsageError(f"poorly formatted environment: {what} ({path}, line {number})", FORM_HINT)
