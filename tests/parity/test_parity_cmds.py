"""Parity with Docker for the commands of issue #16: pause, unpause, top, cp, rename, port,
restart, create + start -a/-i, logs --tail/-t/--since/-f, exec --privileged.

Same harness as test_parity.py: each case's setup lines run in both engines, then one line is
compared as a user sees it. Host PIDs and published host ports differ between any two runs, so
`top` and `port` are compared by their columns, exit status and kind of error.
"""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from parity.conftest import Engines
from parity.test_parity import BB, Case, cases, compare

pytestmark = pytest.mark.kernel

WEB = (f"run -d --name web {BB} sleep 300",)
PAUSED = (*WEB, "pause web")
DONE = (f"run --name done {BB} true",)
TWO = (f"run -d --name aa {BB} sleep 300", f"run -d --name bb {BB} sleep 300")
LESSONS = REPO / "lessons"  # a directory both engines copy from (read only)

PAUSE = {
    "pause-prints-name": Case("pause web", setup=WEB),
    "pause-ps": Case("ps", setup=PAUSED, view="table"),
    "pause-state": Case("inspect -f '{{.State.Status}} {{.State.Paused}} {{.State.Running}}' web", setup=PAUSED),
    "unpause-prints-name": Case("unpause web", setup=PAUSED),
    "unpause-state": Case("inspect -f '{{.State.Status}} {{.State.Paused}}' web", setup=(*PAUSED, "unpause web")),
    "pause-twice": Case("pause web", setup=PAUSED, view="status"),
    "pause-stopped": Case("pause done", setup=DONE, view="status"),
    "unpause-running": Case("unpause web", setup=WEB, view="status"),
    "unpause-stopped": Case("unpause done", setup=DONE, view="status"),
    "pause-missing": Case("pause nosuch", view="status"),
    "pause-two": Case("pause aa bb", setup=TWO),
    "pause-one-missing": Case("pause aa nosuch bb", setup=TWO),
    "exec-paused": Case("exec web true", setup=PAUSED, view="status"),
    "start-paused": Case("start web", setup=PAUSED, view="status"),
    "rm-paused": Case("rm web", setup=PAUSED, view="status"),
    "stop-paused": Case("stop -t 1 web", setup=PAUSED),
    "stop-paused-state": Case("inspect -f '{{.State.Status}} {{.State.Paused}}' web",
                              setup=(*PAUSED, "stop -t 1 web")),
    "kill-paused": Case("kill web", setup=PAUSED),
    "rm-f-paused": Case("rm -f web", setup=PAUSED),
    "top-paused": Case("top web", setup=PAUSED, view="status"),
}

TOP = {
    "top-stopped": Case("top done", setup=DONE, view="status"),
    "top-missing": Case("top nosuch", view="status"),
    "top-no-args": Case("top", view="status"),
    "top-table": Case("top web", setup=WEB, view="table", diff="D14"),
}

CP_IN = (*WEB, "cp /etc/hostname web:/tmp/")
CP = {
    "cp-file-in": Case("exec web cat /tmp/hostname", setup=CP_IN),
    "cp-file-in-owner": Case("exec web stat -c '%u %g' /tmp/hostname", setup=CP_IN),
    "cp-file-new-name": Case("exec web cat /tmp/h2", setup=(*WEB, "cp /etc/hostname web:/tmp/h2")),
    "cp-dir-new": Case("exec web ls /newdir", setup=(*WEB, f"cp {LESSONS} web:/newdir")),
    "cp-dir-into-existing": Case("exec web ls -d /tmp/lessons", setup=(*WEB, f"cp {LESSONS} web:/tmp")),
    "cp-dir-contents": Case("exec web ls /only", setup=(*WEB, "exec web mkdir /only", f"cp {LESSONS}/. web:/only")),
    "cp-into-stopped": Case("start -a cc", setup=(f"create --name cc {BB} cat /tmp/hostname", "cp /etc/hostname cc:/tmp/")),
    "cp-missing-source": Case("cp web:/nosuch /tmp", setup=WEB, view="status"),
    "cp-missing-container": Case("cp nosuch:/etc /tmp", view="status"),
    "cp-file-to-missing-dir": Case("cp /etc/hostname web:/nosuchdir/", setup=WEB, view="exit"),
    "cp-stdin-onto-file": Case("cp - web:/etc/hostname", setup=WEB, input="", view="exit"),
    "cp-no-args": Case("cp", view="status"),
}

MORE = {
    "rename-name": Case("inspect -f '{{.Name}}' web2", setup=(*WEB, "rename web web2")),
    "rename-prints-nothing": Case("rename web web2", setup=WEB),
    "rename-old-gone": Case("inspect web", setup=(*WEB, "rename web web2"), view="status"),
    "rename-taken": Case("rename web done", setup=(*WEB, *DONE), view="status"),
    "rename-missing": Case("rename nosuch x", view="status"),
    "port-none": Case("port web", setup=WEB),
    "port-unpublished": Case("port web 81", setup=(f"run -d --name web -p 80 {BB} sleep 300",), view="status"),
    "port-stopped": Case("port done", setup=DONE),
    "restart-prints-name": Case("restart -t 1 web", setup=WEB),
    "restart-running": Case("inspect -f '{{.State.Running}}' web", setup=(*WEB, "restart -t 1 web")),
    "restart-stopped": Case("restart done", setup=DONE),
    "restart-missing": Case("restart nosuch", view="status"),
    "create-state": Case("inspect -f '{{.State.Status}} {{.State.Running}}' cc", setup=(f"create --name cc {BB} true",)),
    "create-ps": Case("ps -a", setup=(f"create --name cc {BB} true",), view="table"),
    "create-start-a": Case("start -a cc", setup=(f"create --name cc {BB} sh -c 'echo hi; exit 3'",)),
    "create-start-i": Case("start -i cc", setup=(f"create -i --name cc {BB} cat",), input="piped\n"),
    "create-name-taken": Case(f"create --name done {BB} true", setup=DONE, view="status"),
    "start-a-running": Case("start -a aa", setup=(f"run -d --name aa {BB} sh -c 'sleep 4; echo done; exit 5'",)),
    # exec --privileged has no case: docker 20.10's runc fails it on this kernel ("unable to apply
    # caps: operation not permitted"), so there is nothing to compare with; tests/test_lifecycle.py checks it.
}

RESTART = {
    "restart-policy": Case("inspect -f '{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}' rr",
                           setup=(f"run -d --name rr --restart on-failure:2 {BB} true",)),
    "restart-policy-default": Case("inspect -f '{{.HostConfig.RestartPolicy.Name}}' rr", setup=(f"run --name rr {BB} true",)),
    "restart-count": Case("inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' rr",
                          setup=(f"run -d --name rr --restart on-failure:2 {BB} sh -c 'exit 3'", f"run --rm {BB} sleep 3")),
    "restart-no-on-success": Case("inspect -f '{{.RestartCount}}' rr",
                                  setup=(f"run -d --name rr --restart on-failure {BB} true", f"run --rm {BB} sleep 1")),
    "restart-bad-policy": Case(f"run --restart sometimes {BB} true", view="status"),
    "restart-with-rm": Case(f"run --rm --restart always {BB} true", view="exit"),
}

FIVE = (f"run --name ll {BB} sh -c 'for i in 1 2 3 4 5; do echo line$i; done'",)
LOGS = {
    "logs-tail": Case("logs --tail 2 ll", setup=FIVE),
    "logs-tail-0": Case("logs --tail 0 ll", setup=FIVE),
    "logs-tail-all": Case("logs --tail all ll", setup=FIVE),
    "logs-n": Case("logs -n 1 ll", setup=FIVE),
    "logs-t": Case("logs -t --tail 2 ll", setup=FIVE),
    "logs-since-1h": Case("logs --since 1h ll", setup=FIVE),
    "logs-since-future": Case("logs --since 2100-01-01T00:00:00Z ll", setup=FIVE),
    "logs-f-until-exit": Case("logs -f ff", setup=(f"run -d --name ff {BB} sh -c 'echo a; sleep 1; echo b'",)),
}


@pytest.mark.parametrize("case", cases(PAUSE))
def test_pause(engines: Engines, case: Case) -> None:
    compare(engines, case)


@pytest.mark.parametrize("case", cases(TOP))
def test_top(engines: Engines, case: Case) -> None:
    compare(engines, case)


def test_top_columns(engines: Engines) -> None:
    """docker's columns, in docker's order; cshell's CTR PID beside PID is its one addition (D10)."""
    engines.setup(*WEB)
    for line in ("top web", "top web -o pid,comm"):
        docker, cshell = engines.docker(line), engines.cshell(line)
        assert (docker.returncode, cshell.returncode) == (0, 0), (docker.stderr, cshell.stderr)
        header = re.split(r"\s{2,}", cshell.stdout.splitlines()[0].strip())
        assert [t for t in header if t != "CTR PID"] == docker.stdout.split("\n")[0].split(), line
        assert header[header.index("PID") + 1] == "CTR PID"
        assert len(cshell.stdout.splitlines()) == len(docker.stdout.strip().splitlines()), line  # one process


@pytest.mark.parametrize("case", cases(CP))
def test_cp(engines: Engines, case: Case) -> None:
    compare(engines, case)


@pytest.mark.parametrize("case", cases(MORE))
def test_more(engines: Engines, case: Case) -> None:
    compare(engines, case)


@pytest.mark.parametrize("case", cases(RESTART))
def test_restart_policy(engines: Engines, case: Case) -> None:
    compare(engines, case)


@pytest.mark.parametrize("case", cases(LOGS))
def test_logs(engines: Engines, case: Case) -> None:
    compare(engines, case)
