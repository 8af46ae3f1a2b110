"""events: the journal the engine and the shims write, read back as `docker events` prints it.

Real containers, images and volumes, each test on its own state root; one test follows the
journal from a second cshell process while the first acts, as a student's second terminal would.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, Cshell, cshell_argv, cshell_env, wait_for
from test_transfer import fails, ok

from cshell.engine import events as journal

pytestmark = pytest.mark.kernel
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d)"


def stored(cshell: Cshell, *args: str) -> list[dict]:
    """The events so far, as docker's JSON objects."""
    out = ok(cshell("events", "--until", "0s", "--format", "{{json .}}", *args))
    return [json.loads(line) for line in out.splitlines()]


def actions(found: list[dict]) -> list[str]:
    return [f"{e['Type']} {e['Action']}" for e in found]


def test_a_container_life_is_told_in_order(cshell: Cshell) -> None:
    proc = cshell("run", "--net", "none", "--name", "e1", "busybox", "sh", "-c", "exit 3")
    assert proc.returncode == 3, proc
    ok(cshell("rm", "e1"))
    life = stored(cshell, "-f", "type=container")
    assert actions(life) == ["container create", "container start", "container die", "container destroy"]
    assert {e["Actor"]["Attributes"]["name"] for e in life} == {"e1"}
    assert life[2]["Actor"]["Attributes"]["exitCode"] == "3" and life[2]["from"] == "busybox"
    times = [e["timeNano"] for e in life]
    assert times == sorted(times) and all(e["time"] == e["timeNano"] // 10**9 for e in life)
    text = ok(cshell("events", "--until", "0s", "-f", "event=die")).splitlines()
    assert len(text) == 1
    import re
    assert re.fullmatch(STAMP + rf" container die {life[2]['id']} \(exitCode=3, image=busybox, name=e1\)", text[0])


def test_stop_kill_exec_and_oom(cshell: Cshell) -> None:
    ok(cshell("run", "-d", "--net", "none", "--name", "w", "busybox", "sleep", "60"))
    ok(cshell("exec", "w", "true"))
    ok(cshell("stop", "-t", "1", "w"))
    ok(cshell("rm", "w"))
    assert actions(stored(cshell, "-f", "container=w")) == [
        "container create", "container start", "container exec_start: true", "container exec_die",
        "container kill", "container kill", "container die", "container stop", "container destroy"]  # TERM, KILL
    kills = stored(cshell, "-f", "event=kill")
    assert [e["Actor"]["Attributes"]["signal"] for e in kills] == [str(int(signal.SIGTERM)), str(int(signal.SIGKILL))]
    proc = cshell("run", "--name", "hog", "--net", "none", "--memory", "16m", "busybox", "tail", "/dev/zero")
    assert proc.returncode == 137, proc
    assert actions(stored(cshell, "-f", "container=hog", "-f", "event=oom", "-f", "event=die")) == [
        "container oom", "container die"]
    ok(cshell("rm", "hog"))


def test_images_and_volumes(cshell: Cshell, tmp_path: Path) -> None:
    ok(cshell("run", "--rm", "--net", "none", "busybox", "true"))  # busybox is made here
    ok(cshell("tag", "busybox", "mine:v1"))
    ok(cshell("save", "-o", str(tmp_path / "m.tar"), "mine:v1"))
    ok(cshell("rmi", "mine:v1"))
    ok(cshell("load", "-i", str(tmp_path / "m.tar")))
    ok(cshell("volume", "create", "data"))
    ok(cshell("volume", "rm", "data"))
    found = stored(cshell, "-f", "type=image", "-f", "type=volume")
    assert actions(found) == ["image tag", "image save", "image untag", "image load",
                              "volume create", "volume destroy"]
    image_id = found[0]["id"]
    assert image_id.startswith("sha256:") and found[0]["Actor"]["Attributes"]["name"] == "mine:v1"
    assert {e["Actor"]["ID"] for e in found[:4]} == {image_id}
    assert found[4]["Actor"] == {"ID": "data", "Attributes": {"driver": "local"}}
    assert actions(stored(cshell, "-f", "image=mine:v1")) == ["image tag"]


def test_a_second_terminal_sees_events_as_they_happen(cshell: Cshell, state_root: Path) -> None:
    watcher = subprocess.Popen([*cshell_argv(), "--root", str(state_root), "events", "-f", "type=container"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cshell_env(),
                               cwd=REPO, stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # the watcher is reading the (empty) journal
        ok(cshell("run", "--rm", "--net", "none", "--name", "live", "busybox", "true"))
        seen = bytearray()

        def destroyed() -> bool:
            if select.select([watcher.stdout], [], [], 0)[0]:
                seen.extend(os.read(watcher.stdout.fileno(), 65536))
            return b" container destroy " in seen
        assert wait_for(destroyed, timeout=10, interval=0.1), seen
        assert [line.split()[2] for line in seen.decode().splitlines()] == ["create", "start", "die", "destroy"]
    finally:
        watcher.send_signal(signal.SIGINT)  # Ctrl-C: the way out of a stream
        assert watcher.wait(10) == 0 and b"Traceback" not in watcher.stderr.read()


def test_since_and_until(cshell: Cshell) -> None:
    ok(cshell("volume", "create", "early"))
    time.sleep(1.1)
    middle = time.time()
    time.sleep(0.1)
    ok(cshell("volume", "create", "late"))
    assert [e["Actor"]["ID"] for e in stored(cshell, "--since", f"{middle:.3f}")] == ["late"]
    until = ok(cshell("events", "--since", "1h", "--until", f"{middle:.3f}", "--format", "{{.Actor.ID}}"))
    assert until.split() == ["early"]
    assert ok(cshell("events", "--since", "2000-01-01", "--until", "1999-01-01")) == ""


@pytest.mark.parametrize("args, words", [
    (("--since", "soon"), "invalid value 'soon' for --since"),
    (("--until", "3 days"), "invalid value '3 days' for --until"),
    (("-f", "colour=red"), "invalid filter 'colour'"),
    (("-f", "type"), "bad filter 'type'"),
    (("--format", "{{.Nope"), "unclosed action"),
    (("--format", "{{.Nope}}"), "no field 'Nope'"),
])
def test_bad_input_is_one_line_and_changes_nothing(cshell: Cshell, state_root: Path, args: tuple[str, ...],
                                                    words: str) -> None:
    ok(cshell("volume", "create", "vol"))
    before = (state_root / journal.JOURNAL).read_bytes()
    proc = cshell("events", "--until", "0s", *args)
    assert words in fails(proc)
    assert (state_root / journal.JOURNAL).read_bytes() == before


def test_a_damaged_line_is_skipped_and_the_journal_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal.emit(tmp_path, "volume", "create", "a")
    with open(tmp_path / journal.JOURNAL, "ab") as f:
        f.write(b'{"t": 12, "type": "vol\n')  # a line a crash cut short
    journal.emit(tmp_path, "volume", "create", "b")
    assert [e.actor for e in journal.read(tmp_path)] == ["a", "b"]
    monkeypatch.setattr(journal, "MAX_BYTES", 200)
    for name in "cdefgh":
        journal.emit(tmp_path, "volume", "create", name)
    assert (tmp_path / (journal.JOURNAL + ".1")).exists()
    kept = [e.actor for e in journal.read(tmp_path)]
    assert kept[-1] == "h" and kept == sorted(kept) and len(kept) < 8  # the oldest went
