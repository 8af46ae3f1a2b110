"""Images travel between cshell and Docker both ways, and both build the same layers.

* cshell builds the lesson's app, pushes it to a local registry; Docker pulls it, runs it
  with ``-p`` and the page answers over HTTP;
* Docker builds an image whose later layers delete a file (a whiteout) and delete then
  recreate a directory (an opaque directory); ``docker save`` -> ``cshell load`` ->
  ``cshell run`` sees exactly the files Docker's container sees;
* the same Dockerfile built by both (Docker's classic builder) gives the same members in
  each layer tar: names, types, modes, owners, sizes, link targets (mtimes set aside).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from registryd import Registry, free_port, serve
from test_network import http_get

from parity.conftest import Engines

pytestmark = pytest.mark.kernel

APP = REPO / "lessons" / "app"

LAYERED = """\
FROM busybox
RUN mkdir -p /data/keep /data/gone /data/opaque \\
 && echo a > /data/keep/a && echo b > /data/gone/b && echo c > /data/opaque/old && echo x > /data/file-gone \\
 && ln -s keep/a /data/link && ln /data/keep/a /data/hard && chmod 0750 /data/keep && chown 1000:100 /data/keep/a
RUN rm -rf /data/gone /data/file-gone /data/opaque && mkdir /data/opaque && echo new > /data/opaque/new \\
 && chmod 0600 /data/keep/a
COPY --chown=7:8 files/ /copied/
ADD f.txt /added.txt
ENV X=1
WORKDIR /work
"""
# What a container of LAYERED sees under /data and the rest it was given, one `find` line each.
LAYERED_FILES = """\
/added.txt 644 0 0 f
/copied 755 7 8 d
/copied/sub 755 7 8 d
/copied/sub/s.sh 755 7 8 f
/copied/x.txt 640 7 8 f
/data 755 0 0 d
/data/hard 644 1000 100 f
/data/keep 750 0 0 d
/data/keep/a 600 1000 100 f
/data/link 777 0 0 l
/data/opaque 755 0 0 d
/data/opaque/new 644 0 0 f
/work 755 0 0 d
"""
LIST = "sh -c 'for f in /added.txt /work $(find /copied /data | sort); do stat -c \"%n %a %u %g %F\" $f; done'"


def layered_context(where: Path) -> Path:
    (where / "files" / "sub").mkdir(parents=True)
    (where / "files" / "x.txt").write_text("x\n")
    (where / "files" / "x.txt").chmod(0o640)
    (where / "files" / "sub" / "s.sh").write_text("#!/bin/sh\n")
    (where / "files" / "sub" / "s.sh").chmod(0o755)
    (where / "f.txt").write_text("added\n")
    (where / "Dockerfile").write_text(LAYERED)
    return where


def as_find(stat_lines: str) -> str:
    """`stat` lines -> 'path mode uid gid kind' with the kind as one letter, sorted."""
    kinds = {"regular file": "f", "regular empty file": "f", "directory": "d", "symbolic link": "l"}
    rows = []
    for line in stat_lines.splitlines():
        path, mode, uid, gid, kind = line.split(" ", 4)
        rows.append(f"{path} {mode} {uid} {gid} {kinds.get(kind, kind)}")
    return "\n".join(sorted(rows)) + "\n"


@pytest.fixture
def registry() -> Iterator[Registry]:
    yield from serve("open")


def test_docker_pulls_and_runs_what_cshell_pushed(engines: Engines, registry: Registry) -> None:
    ref = f"{registry.host}/interop/helloworld:v1"
    built = engines.cshell(f"build -t {ref} -f {APP}/Dockerfile.busybox {APP}")
    assert built.returncode == 0, built.stderr
    pushed = engines.cshell(f"push {ref}")
    assert pushed.returncode == 0, pushed.stderr
    pulled = engines.docker(f"pull {ref}")
    assert pulled.returncode == 0, pulled.stderr
    assert engines.docker(f"inspect --format '{{{{json .Config.Cmd}}}}' {ref}").stdout.strip() == \
        '["sh","/app/app.sh"]'
    port = free_port()
    ran = engines.docker(f"run -d -p 127.0.0.1:{port}:80 {ref}")
    assert ran.returncode == 0, ran.stderr
    page = http_get("127.0.0.1", port, timeout=10.0)
    assert page == f"<h3>Hello World!</h3><b>Hostname:</b> {ran.stdout.strip()[:12]}<br/>"


def test_cshell_loads_and_runs_what_docker_saved(engines: Engines, tmp_path: Path) -> None:
    context = layered_context(tmp_path / "ctx")
    built = engines.docker(f"build -q -t layered {context}")
    assert built.returncode == 0, built.stderr
    tar = tmp_path / "layered.tar"
    assert engines.docker(f"save -o {tar} layered").returncode == 0
    assert engines.cshell(f"load -i {tar}").returncode == 0
    theirs = engines.docker(f"run --rm layered {LIST}")
    mine = engines.cshell(f"run --rm layered {LIST}")
    assert theirs.returncode == mine.returncode == 0, mine.stderr
    assert as_find(theirs.stdout) == LAYERED_FILES
    assert as_find(mine.stdout) == LAYERED_FILES
    for line in ("cat /data/opaque/new", "pwd", "sh -c 'echo $X'", "readlink /data/link"):
        assert engines.cshell(f"run --rm layered {line}").stdout == engines.docker(f"run --rm layered {line}").stdout
    gone = engines.cshell("run --rm layered ls -a /data/opaque /data")
    assert gone.stdout.split() == engines.docker("run --rm layered ls -a /data/opaque /data").stdout.split()


def layer_members(archive: Path, ref: str) -> list[list[str]]:
    """Each layer of `ref` in a saved archive (docker's manifest.json): its tar's members as
    'name type mode uid gid size link', sorted, mtimes and user/group names set aside."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        entry = next(m for m in manifest if any(t.endswith(ref) or t == ref for t in m.get("RepoTags") or []))
        layers = []
        for name in entry["Layers"]:
            blob = outer.extractfile(name)
            assert blob is not None, name
            with tarfile.open(fileobj=io.BytesIO(blob.read()), mode="r:*") as layer:
                layers.append(sorted(_member(m) for m in layer.getmembers()))
    return layers


def _member(m: tarfile.TarInfo) -> str:
    kind = {tarfile.REGTYPE: "f", tarfile.AREGTYPE: "f", tarfile.DIRTYPE: "d", tarfile.SYMTYPE: "l",
            tarfile.LNKTYPE: "h"}.get(m.type, repr(m.type))
    name = m.name.rstrip("/").removeprefix("./")
    link = m.linkname.removeprefix("./") if m.type in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    return f"{name} {kind} {m.mode & 0o7777:o} {m.uid} {m.gid} {m.size if kind == 'f' else 0} {link}".rstrip()


@pytest.mark.parametrize("which", ["layered", "lesson-app"])
def test_same_dockerfile_same_layers(engines: Engines, tmp_path: Path, which: str) -> None:
    if which == "layered":
        context, flags = layered_context(tmp_path / "ctx"), ""
    else:
        context, flags = APP, f"-f {APP}/Dockerfile.busybox"
    for engine in (engines.docker, engines.cshell):
        built = engine(f"build -q -t same:{which} {flags} {context}")
        assert built.returncode == 0, built.stderr
        saved = engine(f"save -o {tmp_path}/{engine.__name__}.tar same:{which}")
        assert saved.returncode == 0, saved.stderr
    theirs = layer_members(tmp_path / "docker.tar", f"same:{which}")
    mine = layer_members(tmp_path / "cshell.tar", f"same:{which}")
    assert len(mine) == len(theirs), (mine, theirs)
    for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
        assert a == b, f"layer {i}: cshell {a} docker {b}"
