"""commit, history, tag, rmi and image prune on real containers (busybox, as root).

commit turns the container's overlay upper dir into a layer: deletions become
`.wh.NAME` files, a directory removed and made again becomes opaque
(`.wh..wh..opq`), and the runtime's /etc/hosts, hostname and resolv.conf (bind
mounts over init-layer placeholders) never get in, even when written to.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from conftest import Cshell, wait_for

from cshell.engine.limits import cgroups

pytestmark = pytest.mark.kernel

CHANGES = ("echo new > /x && rm /etc/group && rm -rf /usr/sbin && mkdir /usr/sbin && "
           "echo only > /usr/sbin/only && echo '10.9.9.9 extra' >> /etc/hosts")


def ok(proc) -> str:  # noqa: ANN001 - CompletedProcess
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def fails(proc) -> list[str]:  # noqa: ANN001
    """A user error: exit 1, `error: ...` and `hint: ...`, never a traceback."""
    assert proc.returncode == 1, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and lines[-1].startswith("hint: "), lines
    return lines


def running(cshell: Cshell, name: str) -> str:
    """A detached busybox that keeps running; returns its host PID."""
    ok(cshell("run", "-d", "--name", name, "busybox", "sleep", "1000"))
    return pid_of(cshell, name)


def pid_of(cshell: Cshell, name: str) -> str:
    return ok(cshell("inspect", "-f", "{{.State.Pid}}", name)).strip()


def image_field(cshell: Cshell, ref: str, field: str):  # noqa: ANN201 - decoded JSON
    return json.loads(ok(cshell("inspect", "-f", f"{{{{json .{field}}}}}", ref)))


def blob(state_root: Path, digest: str) -> Path:
    return state_root / "images" / "blobs" / "sha256" / digest.removeprefix("sha256:")


def images_rows(cshell: Cshell, *flags: str) -> list[list[str]]:
    return [line.split()[:3] for line in ok(cshell("images", *flags)).splitlines()[1:]]


def test_commit_records_changes_with_whiteouts(cshell: Cshell, state_root: Path) -> None:
    pid = running(cshell, "c")
    ok(cshell("exec", "c", "sh", "-c", CHANGES))
    assert "10.9.9.9 extra" in ok(cshell("exec", "c", "cat", "/etc/hosts"))

    image_id = ok(cshell("commit", "-m", "three changes", "c", "snap:v1")).strip()
    assert image_id.startswith("sha256:")
    assert pid_of(cshell, "c") == pid  # the container kept running through the commit
    assert ok(cshell("exec", "c", "cat", "/x")) == "new\n"

    base_layers = image_field(cshell, "busybox", "RootFS.Layers")
    layers = image_field(cshell, "snap:v1", "RootFS.Layers")
    assert layers[:-1] == base_layers and len(layers) == len(base_layers) + 1  # shared, not copied
    with tarfile.open(blob(state_root, layers[-1])) as tar:
        names = set(tar.getnames())
    assert {"x", "etc/.wh.group", "usr/sbin/.wh..wh..opq", "usr/sbin/only"} <= names, names
    assert not names & {"etc/hosts", "etc/hostname", "etc/resolv.conf"}, names  # the init layer's point

    seen = ok(cshell("run", "--rm", "snap:v1", "sh", "-c",
                     "cat /x; test -e /etc/group || echo group-gone; ls -A /usr/sbin"))
    assert seen == "new\ngroup-gone\nonly\n"
    assert "10.9.9.9" not in ok(cshell("run", "--rm", "snap:v1", "cat", "/etc/hosts"))
    # The base image is untouched: its /usr/sbin still holds the applet links.
    assert len(ok(cshell("run", "--rm", "busybox", "ls", "/usr/sbin")).split()) > 1
    ok(cshell("rm", "-f", "c"))


def test_commit_change_cmd_and_history(cshell: Cshell) -> None:
    running(cshell, "c")
    ok(cshell("exec", "c", "sh", "-c", "echo from-x > /x"))
    ok(cshell("commit", "-m", "add x", "-c", 'CMD ["cat","/x"]', "c", "catx"))
    assert ok(cshell("run", "--rm", "catx")) == "from-x\n"  # the new default command
    assert image_field(cshell, "catx", "Config.Cmd") == ["cat", "/x"]

    history = ok(cshell("history", "catx")).splitlines()
    assert history[0].split()[:2] == ["LAYER", "CREATED"]
    newest = history[1]
    assert "add x" in newest and "sleep 1000" in newest, history  # the container's command, the -m comment
    assert len(history) == len(ok(cshell("history", "busybox")).splitlines()) + 1  # one step more
    ok(cshell("rm", "-f", "c"))


def test_commit_unknown_container_is_one_line_error(cshell: Cshell) -> None:
    ok(cshell("image", "bootstrap", "busybox"))
    lines = fails(cshell("commit", "nope", "img:v1"))
    assert lines[0] == "error: no such container: nope" and len(lines) == 2


def test_rmi_of_an_image_in_use(cshell: Cshell) -> None:
    running(cshell, "c")
    ok(cshell("exec", "c", "sh", "-c", "echo kept > /x"))
    image_id = ok(cshell("commit", "c", "snap")).strip()
    ok(cshell("run", "-d", "--name", "user", "snap", "sleep", "1000"))

    lines = fails(cshell("rmi", "snap"))
    assert "used by a container" in lines[0] and "rmi -f" in lines[-1]
    assert "snap" in [row[0] for row in images_rows(cshell)]

    assert ok(cshell("rmi", "-f", "snap")) == "Untagged: snap:latest\n"
    assert "snap" not in [row[0] for row in images_rows(cshell)]
    assert ["<none>", "<none>", image_id[7:19]] in images_rows(cshell, "-a")  # kept for its container
    assert ok(cshell("exec", "user", "cat", "/x")) == "kept\n"  # still running on its layers
    assert image_field(cshell, "user", "State.Running") is True
    ok(cshell("rm", "-f", "user", "c"))


def test_image_prune_keeps_what_containers_use(cshell: Cshell, state_root: Path) -> None:
    running(cshell, "c")
    ok(cshell("exec", "c", "sh", "-c", "echo a > /a"))
    dangling = ok(cshell("commit", "c")).strip()  # no name: untagged from the start
    ok(cshell("run", "--rm", dangling[7:19], "true"))  # unpacks its top layer
    dangling_top = image_field(cshell, dangling[7:19], "RootFS.Layers")[-1]
    dangling_dir = image_field(cshell, dangling[7:19], "GraphDriver.Data.LowerDir").split(":")[0]
    assert Path(dangling_dir).is_dir()

    ok(cshell("exec", "c", "sh", "-c", "echo b > /b"))
    old = ok(cshell("commit", "c", "keep:v1")).strip()
    ok(cshell("run", "-d", "--name", "u", "keep:v1", "sleep", "1000"))
    ok(cshell("exec", "c", "sh", "-c", "echo c > /c"))
    new = ok(cshell("commit", "c", "keep:v1")).strip()  # the name moves; the old image stays, untagged
    ids = [row[2] for row in images_rows(cshell, "-a")]
    assert {dangling[7:19], old[7:19], new[7:19]} <= set(ids)

    out = ok(cshell("image", "prune"))
    assert f"Deleted: {dangling[7:19]}" in out and old[7:19] not in out
    ids = [row[2] for row in images_rows(cshell, "-a")]
    assert dangling[7:19] not in ids and old[7:19] in ids and new[7:19] in ids
    assert not blob(state_root, dangling).exists() and not blob(state_root, dangling_top).exists()
    assert not Path(dangling_dir).exists()
    assert blob(state_root, old).exists()  # in use by u
    assert ok(cshell("exec", "u", "cat", "/b")) == "b\n"
    ok(cshell("rm", "-f", "u", "c"))


def test_tag_gives_the_same_id_two_names(cshell: Cshell) -> None:
    ok(cshell("image", "bootstrap", "busybox"))
    ok(cshell("tag", "busybox", "geektime/box:v1"))
    rows = images_rows(cshell)
    by_name = {f"{repo}:{tag}": image_id for repo, tag, image_id in rows}
    assert by_name["busybox:latest"] == by_name["geektime/box:v1"], rows
    assert len(rows) == 2


def test_commit_pauses_a_busy_container_and_resumes_it(cshell: Cshell, state_root: Path) -> None:
    """docker commit --pause: the container is frozen while its rw layer is read, then thawed."""
    ok(cshell("run", "-d", "--name", "busy", "busybox", "sh", "-c",
              "while true; do echo line >> /log; done"))
    # explain on shows the freeze and the thaw, in the container's own group (v1: its freezer
    # group; v2: cgroup.freeze, under systemd in cshell.slice/cshell-ID12.scope/container)
    done = cshell("-c", "explain on; commit busy busy:snap")
    shown = ok(done) + done.stderr
    cid = ok(cshell("inspect", "--format", "{{.Id}}", "busy")).strip()
    group = cgroups.container_dirs(cid)[0]
    control = str(group / "cgroup.freeze" if cgroups.is_v2() else
                  cgroups.CGROUP_ROOT / "freezer" / cgroups.GROUP / cid / "freezer.state")
    control = control.replace(cid, cid[:12] + "…")  # explain shortens ids
    on, off = ("1", "0") if cgroups.is_v2() else ("FROZEN", "THAWED")
    assert f"echo {on} > {control}" in shown and f"echo {off} > {control}" in shown, shown
    digest = image_field(cshell, "busy:snap", "RootFS.Layers")[-1]
    with tarfile.open(blob(state_root, digest)) as tar:  # a complete, readable tar
        assert "log" in tar.getnames()
    before = int(ok(cshell("exec", "busy", "wc", "-c", "/log")).split()[0])
    assert wait_for(lambda: int(ok(cshell("exec", "busy", "wc", "-c", "/log")).split()[0]) > before), \
        "the container did not resume after commit"
    ok(cshell("rm", "-f", "busy"))


def test_commit_never_follows_a_symlink_out_of_the_rw_layer(cshell: Cshell, state_root: Path) -> None:
    """A directory the container swaps for a symlink to a host path is stored as a link, not followed."""
    ok(cshell("run", "-d", "--name", "swap", "busybox", "sh", "-c",
              "mkdir -p /d && ln -s /etc /d/hostetc && ln -s ../../../../../../etc /rel && sleep 1000"))
    assert wait_for(lambda: cshell("exec", "swap", "test", "-L", "/rel").returncode == 0)
    ok(cshell("commit", "swap", "swap:snap"))
    digest = image_field(cshell, "swap:snap", "RootFS.Layers")[-1]
    with tarfile.open(blob(state_root, digest)) as tar:
        names = tar.getnames()
        assert tar.getmember("d/hostetc").issym() and tar.getmember("rel").issym()
    assert not any(n.startswith(("d/hostetc/", "rel/")) for n in names), names
    ok(cshell("rm", "-f", "swap"))
