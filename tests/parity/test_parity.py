"""Parity with Docker itself (issue #15): the same command lines through docker 20.10 and cshell.

Each case runs its setup lines in both engines, then one compared line, and asserts
that a user sees the same: exit status, stdout (normalised: ids, times, sizes,
addresses; tables cell by cell; inspect as keys and value types) and the kind of
error on stderr. A case that is a deliberate difference is marked with its row of
docs/differences.md (``diff="D2"``): it is expected to differ (strict xfail), so
the day it matches, the row must go.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cshell.engine.limits import cgroups
from parity.conftest import Engines

pytestmark = pytest.mark.kernel

BB = "busybox"
RUN = f"run --rm {BB}"
# Rows that only show on some hosts: Docker 20.10 gives a container a private cgroup namespace
# on cgroup v2 only (on v1 it shares the host's), so on v2 the D10 case matches.
DIFFERS_HERE = {"D10": not cgroups.is_v2()}


@dataclass(frozen=True)
class Case:
    line: str
    setup: tuple[str, ...] = ()
    view: str = "text"  # text | lines | table | shape | status | exit (see compare.seen)
    input: str | None = None
    diff: str = ""  # the row of docs/differences.md this case shows


def cases(table: dict[str, Case]) -> list:
    return [pytest.param(c, id=name, marks=[pytest.mark.xfail(strict=True, reason=f"docs/differences.md {c.diff}")]
                         if c.diff and DIFFERS_HERE.get(c.diff, True) else []) for name, c in table.items()]


def compare(engines: Engines, case: Case) -> None:
    engines.setup(*case.setup)
    docker, cshell = engines.both(case.line, case.input, case.view)
    assert cshell == docker, f"`{case.line}` docker={docker} cshell={cshell}"


# -- run: exit statuses -----------------------------------------------------------------
EXIT = {
    "true": Case(f"{RUN} true"),
    "false": Case(f"{RUN} false"),
    "exit-3": Case(f"{RUN} sh -c 'exit 3'"),
    "exit-255": Case(f"{RUN} sh -c 'exit 255'"),
    "killed-9": Case(f"{RUN} sh -c 'kill -9 $$'"),
    "killed-term": Case(f"{RUN} sh -c 'trap - TERM; kill -TERM $$; sleep 1'"),
    "not-found-127": Case(f"{RUN} nosuchcmd", view="status"),
    "not-found-path-127": Case(f"{RUN} /no/such/file", view="status"),
    "not-executable-126": Case(f"{RUN} /etc/passwd", view="exit"),
    "directory-126": Case(f"{RUN} /", view="status"),
    "unknown-flag-125": Case(f"run --rm --no-such-flag {BB} true", view="status"),
    "flag-needs-value-125": Case(f"run --rm {BB} --name", view="text"),
    "no-image-125": Case("run --rm no-such-image-here true", view="status"),
    "bad-user-125": Case(f"run --rm -u nosuchuser {BB} id", view="status"),
    "bad-group-125": Case(f"run --rm -u 0:nosuchgroup {BB} id", view="status"),
    "name-taken-125": Case(f"run --name twice {BB} true", setup=(f"run --name twice {BB} true",), view="status"),
    "no-args-1": Case("run", view="status"),
    "detach-prints-id": Case(f"run -d --name d1 {BB} true"),
    "shell-and": Case(f"{RUN} sh -c 'true && exit 7'"),
    "stdout-stderr": Case(f"{RUN} sh -c 'echo out; echo err >&2'"),
    "exit-in-pipe": Case(f"{RUN} sh -c 'false | true'"),
    "exit-code-sum": Case(f"{RUN} sh -c 'exit 300'"),
}


@pytest.mark.parametrize("case", cases(EXIT))
def test_exit_status(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- inside the container: files, users, environment, working directory -------------------
INSIDE = {
    "echo": Case(f"{RUN} echo hello world"),
    "id-root": Case(f"{RUN} id"),
    "id-1000": Case(f"{RUN} -u 1000 id"),
    "id-1000-1000": Case(f"{RUN} -u 1000:1000 id"),
    "id-nobody": Case(f"{RUN} -u nobody id"),
    "id-0-100": Case(f"{RUN} -u 0:100 id"),
    "whoami": Case(f"{RUN} whoami"),
    "home-root": Case(f"{RUN} sh -c 'echo $HOME'"),
    "home-1000": Case(f"{RUN} -u 1000 sh -c 'echo $HOME'"),
    "env-default": Case(f"{RUN} sh -c 'env | grep -v ^HOSTNAME= | sort'"),
    "env-hostname-is-id": Case(f"{RUN} sh -c 'test $HOSTNAME = $(hostname) && echo same'"),
    "env-e": Case(f"{RUN} -e A=1 -e B='two words' sh -c 'echo $A/$B'"),
    "env-e-override-path": Case(f"{RUN} -e PATH=/bin sh -c 'echo $PATH'"),
    "env-e-empty": Case(f"{RUN} -e EMPTY= sh -c 'env | grep ^EMPTY'"),
    "env-e-unset-copy": Case(f"{RUN} -e CSHELL_PARITY_UNSET sh -c 'env | grep -c CSHELL_PARITY_UNSET'"),
    "pwd-default": Case(f"{RUN} pwd"),
    "pwd-w": Case(f"{RUN} -w /tmp pwd"),
    "pwd-w-created": Case(f"{RUN} -w /new/dir pwd"),
    "pwd-w-created-mode": Case(f"{RUN} -w /new/dir stat -c '%a %u %g' /new/dir"),
    "pwd-w-relative-sh": Case(f"{RUN} -w /etc sh -c 'ls passwd group'"),
    "ls-root": Case(f"{RUN} ls /"),
    "ls-a-root": Case(f"{RUN} ls -a /", diff="D1"),
    "etc-mtab": Case(f"{RUN} readlink /etc/mtab"),
    "flags-after-image": Case(f"{RUN} ls -d /etc"),
    "ls-etc": Case(f"{RUN} ls /etc"),
    "ls-dev": Case(f"{RUN} ls /dev"),
    "dev-null-write": Case(f"{RUN} sh -c 'echo x > /dev/null && echo ok'"),
    "dev-zero": Case(f"{RUN} sh -c 'head -c 4 /dev/zero | od -An -tx1'"),
    "dev-shm-dir": Case(f"{RUN} sh -c 'test -d /dev/shm && echo dir'"),
    "dev-pts-dir": Case(f"{RUN} sh -c 'test -d /dev/pts && echo dir'"),
    "tmp-mode": Case(f"{RUN} stat -c '%a' /tmp"),
    "root-mode": Case(f"{RUN} stat -c '%a %u %g' /"),
    "etc-passwd": Case(f"{RUN} cat /etc/passwd"),
    "etc-group": Case(f"{RUN} cat /etc/group"),
    "etc-hostname-is-id": Case(f"{RUN} sh -c 'test $(cat /etc/hostname) = $(hostname) && echo same'"),
    "hostname-h": Case(f"{RUN} -h box hostname"),
    "etc-hostname-h": Case(f"{RUN} -h box cat /etc/hostname"),
    "etc-hosts": Case(f"{RUN} -h box cat /etc/hosts"),
    "etc-hosts-none": Case(f"run --rm --net none -h box {BB} cat /etc/hosts"),
    "hosts-is-mount": Case(f"{RUN} sh -c 'grep -c \" /etc/hosts \" /proc/self/mountinfo'"),
    "hostname-is-mount": Case(f"{RUN} sh -c 'grep -c \" /etc/hostname \" /proc/self/mountinfo'"),
    "resolv-is-mount": Case(f"{RUN} sh -c 'grep -c \" /etc/resolv.conf \" /proc/self/mountinfo'"),
    "mount-order": Case(f"{RUN} cut -d' ' -f5 /proc/self/mountinfo", diff="D2"),
    "mount-order-main": Case(f"{RUN} sh -c \"cut -d' ' -f5 /proc/self/mountinfo | grep -Ev '^/(sys/fs/cgroup|dev/|proc/interrupts)'\""),
    "mount-order-volumes": Case(f"run --rm -v /data --tmpfs /t {BB} sh -c \"cut -d' ' -f5 /proc/self/mountinfo | "
                                "grep -Ev '^/(sys/fs/cgroup|dev/|proc/interrupts)'\""),
    "root-mount-options": Case(f"{RUN} sh -c \"grep ' / / ' /proc/self/mountinfo | cut -d' ' -f6\"", diff="D12"),
    "mount-points-sorted": Case(f"{RUN} sh -c \"cut -d' ' -f5 /proc/self/mountinfo | sort\"", diff="D2"),
    "masked-interrupts": Case(f"{RUN} sh -c 'grep -c \" /proc/interrupts \" /proc/self/mountinfo'", diff="D8"),
    "cgroupns-self": Case(f"{RUN} sh -c 'cut -d: -f3 /proc/self/cgroup | sort -u'", diff="D10"),
    "proc-fs": Case(f"{RUN} sh -c \"grep -c ' /proc proc ' /proc/mounts\""),
    "sys-ro": Case(f"{RUN} sh -c \"grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -c1-2\""),
    "pid-1": Case(f"{RUN} sh -c 'echo $$'"),
    "ps-inside": Case(f"{RUN} ps -o pid,comm"),
    "cap-eff-root": Case(f"{RUN} sh -c 'grep CapEff /proc/self/status'"),
    "cap-eff-user": Case(f"{RUN} -u 1000 sh -c 'grep CapEff /proc/self/status'"),
    "cap-bnd": Case(f"{RUN} sh -c 'grep CapBnd /proc/self/status'"),
    "cap-add": Case(f"run --rm --cap-add NET_ADMIN {BB} sh -c 'grep CapEff /proc/self/status'"),
    "cap-drop-all": Case(f"run --rm --cap-drop ALL {BB} sh -c 'grep CapEff /proc/self/status'"),
    "seccomp-mode": Case(f"{RUN} sh -c 'grep ^Seccomp: /proc/self/status'"),
    "nnp-off": Case(f"{RUN} sh -c 'grep NoNewPrivs /proc/self/status'"),
    "nnp-on": Case(f"run --rm --security-opt no-new-privileges {BB} sh -c 'grep NoNewPrivs /proc/self/status'"),
    "groups-user-group": Case(f"{RUN} -u 65534:65534 id -G"),
    "umask": Case(f"{RUN} sh -c umask"),
    "ulimit-n": Case(f"{RUN} sh -c 'ulimit -n'"),
    "read-only-root": Case(f"run --rm --read-only {BB} touch /x", view="status"),
    "read-only-tmp": Case(f"run --rm --read-only {BB} touch /tmp/x", view="status"),
    "read-only-tmpfs-ok": Case(f"run --rm --read-only --tmpfs /tmp {BB} touch /tmp/x"),
    "read-only-mount-flag": Case(f"run --rm --read-only {BB} sh -c \"grep ' / overlay ' /proc/mounts | cut -d' ' -f4 | cut -c1-2\""),
    "tmpfs-mode": Case(f"run --rm --tmpfs /t {BB} stat -c '%a' /t"),
    "tmpfs-write": Case(f"run --rm --tmpfs /t {BB} sh -c 'echo x > /t/f && cat /t/f'"),
    "volume-anon-empty": Case(f"run --rm -v /data {BB} ls -A /data"),
    "volume-copydata": Case(f"run --rm -v /etc {BB} sh -c 'test -f /etc/passwd && echo copied'"),
    "volume-named-write": Case(f"run --rm -v vol1:/v {BB} sh -c 'echo hi > /v/f; cat /v/f'"),
    "volume-ro": Case(f"run --rm -v vol2:/v:ro {BB} touch /v/f", view="status"),
    "stdin-cat": Case(f"run --rm -i {BB} cat", input="line one\nline two\n"),
    "stdin-wc": Case(f"run --rm -i {BB} wc -l", input="a\nb\nc\n"),
    "stdin-not-kept": Case(f"{RUN} cat", input="ignored\n"),
    "entry-argv": Case(f"{RUN} sh -c 'echo $0 $1' a b"),
    "long-output": Case(f"{RUN} seq 1 2000"),
}


@pytest.mark.parametrize("case", cases(INSIDE))
def test_inside(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- ps, images, history, volume ls: columns ----------------------------------------------
LISTS = {
    "ps-empty": Case("ps", view="table"),
    "ps-a-empty": Case("ps -a", view="table"),
    "ps-running": Case("ps", setup=(f"run -d --name web {BB} sleep 300",), view="table"),
    "ps-a-exited": Case("ps -a", setup=(f"run --name done {BB} true",), view="table"),
    "ps-q": Case("ps -q", setup=(f"run -d --name web {BB} sleep 300",)),
    "ps-aq": Case("ps -aq", setup=(f"run --name done {BB} true",)),
    "ps-no-trunc-q": Case("ps -aq --no-trunc", setup=(f"run --name done {BB} true",)),
    "ps-exit-code": Case("ps -a", setup=(f"run --name three {BB} sh -c 'exit 3'",), view="table"),
    "images": Case("images", view="table"),
    "images-q": Case("images -q"),
    "images-tagged": Case("images mine", setup=(f"tag {BB} mine:v1",), view="table"),
    "images-tagged-tag": Case("images -q mine:v1", setup=(f"tag {BB} mine:v1",), view="status"),
    "history": Case(f"history {BB}", view="table", diff="D3"),
    "history-q": Case(f"history -q {BB}", diff="D3"),
    "volume-ls-empty": Case("volume ls", view="table", diff="D6"),
    "volume-ls": Case("volume ls", setup=("volume create data",), view="table", diff="D6"),
    "volume-ls-q": Case("volume ls -q", setup=("volume create data", "volume create more")),
    "volume-create-prints": Case("volume create named"),
}


@pytest.mark.parametrize("case", cases(LISTS))
def test_lists(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- events: what Docker 20.10 and cshell agree on, and D10 -----------------------------------
EVENTS = {
    "events-bad-since": Case("events --since soon --until 0s", view="status"),
    "events-bad-until": Case("events --since 1h --until later", view="status"),
    "events-until-now": Case("events --since 1h --until 0s -f volume=evvol --format '{{.Action}} {{.Actor.ID}}'",
                             setup=("volume create evvol", "volume rm evvol"), diff="D13"),
    "events-bad-filter": Case("events --until 0s -f colour=red", view="status", diff="D13"),
}


@pytest.mark.parametrize("case", cases(EVENTS))
def test_events(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- stats: the fields and formats (the numbers themselves differ from run to run) ---------------
STATS = {
    "stats-stopped-json": Case("stats --no-stream --format '{{json .}}' done", setup=(f"run --name done {BB} true",)),
    "stats-table-format": Case(r"stats --no-stream --format 'table {{.Name}}\t{{.PIDs}}' web", setup=(f"run -d --name web {BB} sleep 300",)),
    "stats-missing": Case("stats --no-stream nosuch", view="status"),
}


@pytest.mark.parametrize("case", cases(STATS))
def test_stats(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- update and diff: docker's names for cgroup set and layer diff ------------------------------
UPDATE_DIFF = {
    # docker on cgroup v1 refuses --memory alone on a container started without one ("should be smaller
    # than already set memoryswap limit"): both flags, as its users learn to give them
    "update-prints-names": Case("update --memory 64m --memory-swap 128m --cpus 0.5 aa bb",
                                setup=(f"run -d --name aa {BB} sleep 300", f"run -d --name bb {BB} sleep 300")),
    "update-memory-read-back": Case("inspect -f '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}' aa",
                                    setup=(f"run -d --name aa {BB} sleep 300", "update -m 64m --memory-swap 128m --cpus 0.5 aa")),
    "update-too-small": Case("update --memory 1k aa", setup=(f"run -d --name aa {BB} sleep 300",), view="status"),
    "update-missing": Case("update --memory 64m nosuch", view="status"),
    "diff": Case("diff src", setup=(f"run --name src {BB} sh -c 'echo v1 > /made; mkdir -p /d/e; rm /bin/vi'",),
                 view="lines"),
    "diff-missing": Case("diff nosuch", view="status"),
}


@pytest.mark.parametrize("case", cases(UPDATE_DIFF))
def test_update_diff(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- inspect: keys and value types ---------------------------------------------------------
INSPECT = {
    "container-format-status": Case("inspect -f '{{.State.Status}}' done", setup=(f"run --name done {BB} true",)),
    "container-format-exit": Case("inspect -f '{{.State.ExitCode}}' c3", setup=(f"run --name c3 {BB} sh -c 'exit 3'",)),
    "container-format-running": Case("inspect -f '{{.State.Running}}' web", setup=(f"run -d --name web {BB} sleep 300",)),
    "container-format-name": Case("inspect -f '{{.Name}}' web", setup=(f"run -d --name web {BB} sleep 300",)),
    "container-format-cmd": Case("inspect -f '{{.Config.Cmd}}' web", setup=(f"run -d --name web {BB} sleep 300",)),
    "container-format-image": Case("inspect -f '{{.Config.Image}}' web", setup=(f"run -d --name web {BB} sleep 300",)),
    "container-format-readonly": Case("inspect -f '{{.HostConfig.ReadonlyRootfs}}' ro",
                                      setup=(f"run --read-only --name ro {BB} true",)),
    "container-format-env": Case("inspect -f '{{json .Config.Env}}' ee", setup=(f"run -e A=1 --name ee {BB} true",),
                                 diff="D9"),
    "container-shape": Case("inspect web", setup=(f"run -d --name web {BB} sleep 300",), view="shape", diff="D4"),
    "container-mounts-shape": Case("inspect -f '{{json .Mounts}}' web", setup=(f"run -d -v data:/data --name web {BB} sleep 300",),
                                   view="shape"),
    "image-shape": Case(f"inspect {BB}", view="shape", diff="D4"),
    "image-format-cmd": Case(f"inspect -f '{{{{.Config.Cmd}}}}' {BB}"),
    "image-format-os": Case(f"inspect -f '{{{{.Os}}}}/{{{{.Architecture}}}}' {BB}"),
    "volume-shape": Case("volume inspect data", setup=("volume create data",), view="shape"),
    "volume-run-shape": Case("volume inspect data", setup=(f"run -v data:/d {BB} true",), view="shape", diff="D9"),
    "volume-format-driver": Case("volume inspect -f '{{.Driver}}' data", setup=("volume create data",)),
    "inspect-missing": Case("inspect nosuch"),
    "inspect-one-missing": Case("inspect -f '{{.Name}}' web nosuch", setup=(f"run -d --name web {BB} sleep 300",)),
    "volume-inspect-missing": Case("volume inspect nosuch"),
    "inspect-json-no-html-escape": Case("inspect -f '{{.Config.Cmd}}' amp", setup=(f"run --name amp {BB} sh -c 'true && true'",)),
}


@pytest.mark.parametrize("case", cases(INSPECT))
def test_inspect(engines: Engines, case: Case) -> None:
    compare(engines, case)


def test_inspect_json_text(engines: Engines) -> None:
    """inspect's JSON text itself: Go's encoder with SetEscapeHTML(false) and 4 spaces."""
    engines.setup(f"run --name amp {BB} sh -c 'echo \"<a> & é\"'")
    docker, cshell = engines.both("inspect -f '{{.Path}}' amp")
    assert cshell == docker
    raw = engines.cshell("inspect amp").stdout
    assert "<a> & é" in raw and raw.startswith("[\n    {\n        \"Id\": ")


# -- exec ------------------------------------------------------------------------------------
WEB = (f"run -d --name web {BB} sleep 300",)
EXEC = {
    "echo": Case("exec web echo hi", setup=WEB),
    "exit-code": Case("exec web sh -c 'exit 4'", setup=WEB),
    "not-found-126": Case("exec web nosuchcmd", setup=WEB, view="exit"),
    "not-executable-126": Case("exec web /etc/passwd", setup=WEB, view="exit"),
    "bad-user-126": Case("exec -u nosuch web id", setup=WEB, view="exit"),
    "bad-workdir-126": Case("exec -w /nonexist web pwd", setup=WEB, view="exit"),
    "workdir": Case("exec -w /tmp web pwd", setup=WEB),
    "user": Case("exec -u 1000 web id", setup=WEB),
    "user-group": Case("exec -u 1000:1000 web id", setup=WEB),
    "env": Case("exec -e X=1 web sh -c 'echo $X'", setup=WEB),
    "env-inherits": Case("exec web sh -c 'echo $PATH'", setup=(f"run -d -e P=9 --name web {BB} sleep 300",)),
    "stdin-eof": Case("exec -i web cat", setup=WEB, input="piped\n"),
    "stdin-eof-empty": Case("exec -i web cat", setup=WEB, input=""),
    "no-stdin": Case("exec web cat", setup=WEB, input="not passed\n"),
    "pid-ns": Case("exec web sh -c 'cat /proc/1/cmdline | tr \"\\0\" \" \"'", setup=WEB),
    "exec-pid": Case("exec web sh -c 'echo $$'", setup=WEB, diff="D11"),
    "hostname-same": Case("exec web sh -c 'test $(hostname) = $HOSTNAME && echo same'", setup=WEB),
    "sees-files": Case("exec web cat /f", setup=(f"run -d --name web {BB} sh -c 'echo made > /f; sleep 300'",
                                                 "exec web sh -c 'while [ ! -f /f ]; do sleep 0.05; done'")),
    "missing-container": Case("exec nosuch true"),
    "stopped-container": Case("exec done true", setup=(f"run --name done {BB} true",)),
    "no-command": Case("exec web", setup=WEB, view="status"),
}


@pytest.mark.parametrize("case", cases(EXEC))
def test_exec(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- commit -----------------------------------------------------------------------------------
MADE = (f"run --name src {BB} sh -c 'echo v1 > /made; mkdir -p /d/e; rm /bin/vi'",)
COMMIT = {
    "file-kept": Case("run --rm snap cat /made", setup=(*MADE, "commit src snap")),
    "dir-kept": Case("run --rm snap ls -d /d/e", setup=(*MADE, "commit src snap")),
    "deletion-kept": Case("run --rm snap ls /bin/vi", setup=(*MADE, "commit src snap"), view="status"),
    "hosts-not-kept": Case("run --rm snap sh -c 'grep -c src /etc/hosts || true'",
                           setup=(*MADE, "commit src snap")),
    "cmd-kept": Case("inspect -f '{{.Config.Cmd}}' snap", setup=(*MADE, "commit src snap")),
    "change-cmd": Case("run --rm snap2", setup=(*MADE, "commit -c 'CMD [\"cat\", \"/made\"]' src snap2")),
    "change-env": Case("run --rm snap3 sh -c 'echo $K'", setup=(*MADE, "commit -c 'ENV K=v' src snap3")),
    "change-workdir": Case("run --rm snap4 pwd", setup=(*MADE, "commit -c 'WORKDIR /d' src snap4")),
    "tagged": Case("images -q snap:v2", setup=(*MADE, "commit src snap:v2"), view="status"),
    "history-rows": Case("history -q snap", setup=(*MADE, "commit src snap"), view="status", diff="D3"),
    "missing": Case("commit nosuch img"),
    "running-commit": Case("run --rm live ls /tmp/w", setup=(f"run -d --name web {BB} sh -c 'touch /tmp/w; sleep 300'",
                                                               "exec web sh -c 'while [ ! -f /tmp/w ]; do sleep 0.05; done'",
                                                               "commit web live")),
}


@pytest.mark.parametrize("case", cases(COMMIT))
def test_commit(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- build --------------------------------------------------------------------------------------
DOCKERFILES = {
    "run-file": "FROM busybox\nRUN echo built > /b\n",
    "env-cmd": "FROM busybox\nENV GREETING=hey\nCMD [\"sh\", \"-c\", \"echo $GREETING\"]\n",
    "workdir": "FROM busybox\nWORKDIR /app/sub\nRUN pwd > /where\n",
    "user": "FROM busybox\nUSER 1000\nCMD [\"id\"]\n",
    "fails": "FROM busybox\nRUN exit 3\n",
    "entrypoint": "FROM busybox\nENTRYPOINT [\"echo\", \"e:\"]\nCMD [\"default\"]\n",
}
BUILD = {
    "run-file": Case("run --rm b:run-file cat /b"),
    "env-cmd": Case("run --rm b:env-cmd"),
    "workdir-pwd": Case("run --rm b:workdir pwd"),
    "workdir-run": Case("run --rm b:workdir cat /where"),
    "workdir-mode": Case("run --rm b:workdir stat -c '%a %u' /app /app/sub"),
    "workdir-history": Case("history -q b:workdir", view="status", diff="D3"),
    "workdir-layers": Case("inspect -f '{{json .RootFS.Layers}}' b:workdir"),
    "run-layers": Case("inspect -f '{{json .RootFS.Layers}}' b:run-file"),
    "user-cmd": Case("run --rm b:user"),
    "entrypoint-default": Case("run --rm b:entrypoint"),
    "entrypoint-args": Case("run --rm b:entrypoint x y"),
    "image-user": Case("inspect -f '{{.Config.User}}' b:user"),
    "image-workdir": Case("inspect -f '{{.Config.WorkingDir}}' b:workdir"),
    "image-env": Case("inspect -f '{{json .Config.Env}}' b:env-cmd"),
}


def _build(engines: Engines, name: str, tmp_path) -> tuple:  # noqa: ANN001 - pytest's tmp_path
    ctx = tmp_path / name
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILES[name])
    return engines.docker(f"build -q -t b:{name} {ctx}"), engines.cshell(f"build -q -t b:{name} {ctx}")


@pytest.mark.parametrize("case", cases(BUILD))
def test_build(engines: Engines, case: Case, tmp_path) -> None:  # noqa: ANN001
    name = case.line.split("b:")[1].split()[0]
    for proc in _build(engines, name, tmp_path):
        assert proc.returncode == 0, proc.stderr
    compare(engines, case)


def test_build_failing_step(engines: Engines, tmp_path) -> None:  # noqa: ANN001
    docker, cshell = _build(engines, "fails", tmp_path)
    assert (cshell.returncode, bool(cshell.stderr)) == (docker.returncode, bool(docker.stderr))


# -- several targets: rm, stop, start, kill, rmi, volume rm ----------------------------------
TWO = (f"run -d --name aa {BB} sleep 300", f"run -d --name bb {BB} sleep 300")
STOPPED = (f"run --name aa {BB} true", f"run --name bb {BB} true")
TARGETS = {
    "rm-f-two": Case("rm -f aa bb", setup=TWO),
    "rm-f-one-missing": Case("rm -f aa nosuch bb", setup=TWO),
    "rm-f-missing-only": Case("rm -f nosuch"),
    "rm-one-missing": Case("rm aa nosuch bb", setup=STOPPED),
    "rm-running": Case("rm aa", setup=TWO),
    "rm-running-and-stopped": Case("rm aa done", setup=(*TWO, f"run --name done {BB} true")),
    "rm-then-ps": Case("ps -aq", setup=(*STOPPED, "rm aa")),
    "rm-missing-left-others": Case("ps -a", setup=(*TWO, "rm -f aa nosuch"), view="table"),
    "stop-two": Case("stop -t 1 aa bb", setup=TWO),
    "stop-one-missing": Case("stop -t 1 aa nosuch bb", setup=TWO),
    "stop-stopped": Case("stop aa", setup=STOPPED),
    "start-two": Case("start aa bb", setup=STOPPED),
    "start-one-missing": Case("start aa nosuch", setup=STOPPED, view="status"),
    "start-running": Case("start aa", setup=TWO),
    "kill-two": Case("kill aa bb", setup=TWO),
    "kill-one-missing": Case("kill aa nosuch bb", setup=TWO),
    "kill-stopped": Case("kill aa", setup=STOPPED),
    "kill-s-hup": Case("kill -s HUP aa", setup=(f"run -d --name aa {BB} sh -c 'trap \"exit 9\" HUP; sleep 300 & wait'",)),
    "kill-s-hup-code": Case("inspect -f '{{.State.ExitCode}}' aa",
                            setup=(f"run -d --name aa {BB} sh -c 'trap \"exit 9\" HUP; while :; do sleep 0.1; done'",
                                   "exec aa true", "kill -s HUP aa", "wait aa")),
    "kill-s-number": Case("kill -s 9 aa", setup=TWO),
    "kill-s-bad": Case("kill -s NOPE aa", setup=TWO),
    "wait-code": Case("wait aa", setup=(f"run -d --name aa {BB} sh -c 'sleep 0.3; exit 5'",)),
    "wait-missing": Case("wait nosuch"),
    "kill-code": Case("inspect -f '{{.State.ExitCode}}' aa", setup=(*TWO, "kill aa", "wait aa")),
    "rmi-two": Case("rmi x:1 x:2", setup=(f"tag {BB} x:1", f"tag {BB} x:2")),
    "rmi-one-missing": Case("rmi x:1 nosuch x:2", setup=(f"tag {BB} x:1", f"tag {BB} x:2")),
    "rmi-used": Case(f"rmi {BB}", setup=(f"run --name aa {BB} true",), view="status"),
    "rmi-missing": Case("rmi nosuch"),
    "volume-rm-two": Case("volume rm v1 v2", setup=("volume create v1", "volume create v2")),
    "volume-rm-one-missing": Case("volume rm v1 nosuch v2", setup=("volume create v1", "volume create v2")),
    "volume-rm-used": Case("volume rm v1", setup=("volume create v1", f"run --name aa -v v1:/v {BB} true")),
    "volume-rm-left": Case("volume ls -q", setup=("volume create v1", "volume create v2", "volume rm v1")),
}


@pytest.mark.parametrize("case", cases(TARGETS))
def test_targets(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- errors -------------------------------------------------------------------------------------
ERRORS = {
    "unknown-command": Case("nosuchcommand", view="status"),
    "unknown-flag-ps": Case("ps --nope", view="status"),
    "unknown-flag-rm": Case("rm --nope x", view="status"),
    "rm-no-args": Case("rm", view="status"),
    "stop-no-args": Case("stop", view="status"),
    "logs-missing": Case("logs nosuch"),
    "logs-output": Case("logs done", setup=(f"run --name done {BB} sh -c 'echo one; echo two'",)),
    "stop-missing": Case("stop nosuch"),
    "start-missing": Case("start nosuch", view="status"),
    "tag-missing": Case("tag nosuch x:1"),
    "history-missing": Case("history nosuch"),
    "volume-rm-missing": Case("volume rm nosuch"),
    "rename-like-conflict": Case(f"run -d --name aa {BB} sleep 1", setup=(f"run -d --name aa {BB} sleep 300",), view="status"),
    "run-bad-memory": Case(f"run --rm -m 1k {BB} true", view="status"),
    "run-bad-cpus": Case(f"run --rm --cpus 0.0x {BB} true", view="status"),
    "run-bad-publish": Case(f"run --rm -p notaport {BB} true", view="status"),
    "run-bad-volume": Case(f"run --rm -v relative/path:/x {BB} true", view="status"),
    "run-bad-net": Case(f"run --rm --net nosuchnet {BB} true", view="status"),
    "one-character-name": Case(f"run --rm --name a {BB} true", view="status", diff="D7"),
    "run-bad-hostname": Case(f"run --rm -h bad_host! {BB} true", view="status", diff="D5"),
    "run-env-file-missing": Case(f"run --rm --env-file /no/such {BB} true", view="status"),
    "images-extra-arg": Case("images a b", view="status"),
    "volume-create-bad-name": Case("volume create 'bad name'", view="status"),
}


@pytest.mark.parametrize("case", cases(ERRORS))
def test_errors(engines: Engines, case: Case) -> None:
    compare(engines, case)


# -- user-defined networks and names ------------------------------------------------------------
NET = ("network create demo",)
WEB = (*NET, f"run -d --name web --network demo --network-alias www {BB} sh -c "
       "'mkdir /w; echo hi > /w/index.html; exec httpd -f -h /w'")
NETWORKS = {
    "network-create-prints": Case("network create demo"),
    "network-create-twice": Case("network create demo", setup=NET, view="status"),
    "network-create-bad-name": Case("network create 'bad name'", view="status", diff="D16"),
    "network-ls": Case("network ls", setup=NET, view="table"),
    "network-ls-q": Case("network ls -q", setup=NET),
    "network-rm-prints": Case("network rm demo", setup=NET),
    "network-rm-missing": Case("network rm nosuch", view="status"),
    "network-rm-in-use": Case("network rm demo", setup=(*NET, f"run -d --name cc --network demo {BB} sleep 300"),
                              view="status"),
    "network-rm-bridge": Case("network rm bridge", view="status"),
    "network-prune-prints": Case("network prune -f", setup=NET),
    "network-inspect-shape": Case("network inspect demo", setup=NET, view="shape"),
    "network-inspect-name": Case("network inspect -f '{{.Name}} {{.Driver}} {{.Scope}}' demo", setup=NET),
    "run-unknown-network-125": Case(f"run --rm --network nosuch {BB} true", view="status"),
    "alias-on-default-bridge-ignored": Case(f"run --rm --network-alias x {BB} true", view="status"),
    "ip-on-default-bridge-ignored": Case(f"run --rm --ip 172.17.0.9 {BB} true", view="status"),
    "name-resolves": Case(f"run --rm --network demo {BB} sh -c 'sleep 1; wget -qO- http://web/'", setup=WEB),
    "alias-resolves": Case(f"run --rm --network demo {BB} sh -c 'sleep 1; wget -qO- http://www/'", setup=WEB),
    "default-bridge-has-no-names": Case(f"run --rm {BB} ping -c1 -W1 web",
                                        setup=(f"run -d --name web {BB} sleep 300",), view="status"),
    "other-network-cannot-resolve": Case(f"run --rm --network other {BB} ping -c1 -W1 web",
                                         setup=(*WEB, "network create other"), view="status"),
    "connect-then-resolves": Case("exec cc sh -c 'sleep 1; wget -qO- http://web/'",
                                  setup=(*WEB, "network create other", f"run -d --name cc --network other {BB} sleep 300",
                                         "network connect demo cc")),
    "disconnect-not-connected": Case("network disconnect demo cc",
                                     setup=(*NET, f"run -d --name cc {BB} sleep 300"), view="status"),
    "resolver-is-hosts-file": Case(f"run --rm --network demo {BB} nslookup web", setup=WEB, view="status",
                                   diff="D15"),
    "disconnect-run-network": Case("network disconnect demo web", setup=WEB, view="status", diff="D17"),
    "network-inspect-bridge": Case("network inspect -f '{{.Name}}' bridge", view="status", diff="D16"),
}


@pytest.mark.parametrize("case", cases(NETWORKS))
def test_networks(engines: Engines, case: Case) -> None:
    compare(engines, case)
