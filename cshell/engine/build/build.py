"""`build`: a Dockerfile, one instruction after another, one image per instruction.

This is docker's classic builder. Each instruction starts from the image
the one before it made and makes a new, untagged image:

* RUN runs its command in a real container on that image (``Runtime.create``
  and ``launch``, no network unless --network bridge or host); the container's overlay
  upper dir is what the command changed, so it becomes the new layer: it is
  written as a tar into the blob store and then moved into place as the
  unpacked layer (nothing is unpacked twice), and the container is removed.
* ADD and COPY write the context's files into an overlay of the image
  (``copy.py``); that upper dir becomes the new layer the same way.
* ENV, WORKDIR, EXPOSE, CMD and the other settings change only the image's
  config: a history entry with ``empty_layer: true`` and no new layer, the
  "empty layers" of the article.

Before running an instruction, the build cache (``cache.py``) is asked
whether the same instruction already ran on the same parent image with the
same content; then its image is used as it is ("Using cache"). Progress is
reported as events to a callback; nothing here prints.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import posixpath
import select
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from cshell.engine.build import cache as buildcache

from cshell.engine.build import dockerfile

from cshell.engine.image import imageconfig

from cshell.engine.build import commit as images

from cshell.engine import trace
from cshell.engine.build.context import BuildContext, CopyPlan, write_tar
from cshell.engine.build.dockerfile import Dockerfile, DockerfileError, Instruction, Stage, expand
from cshell.engine.state import now
from cshell.engine.state import new_id
from cshell.engine.image.store import Image, Layer, normalize_ref
from cshell.errors import ContainerCommandError, CShellError, NotFound, RuntimeFailure, UsageError
from cshell.record import factory, record

if TYPE_CHECKING:
    from cshell.engine.container.containers import Container, Launch, Runtime

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
NETWORKS = ("none", "host", "bridge")
PROGRESS_MIN = 4 << 20  # COPY steps bigger than this show a progress bar
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


@record
class BuildOptions:
    context: Path | None  # None: `build -`, a Dockerfile from stdin and no context
    dockerfile: Path | None = None  # default: CONTEXT/Dockerfile
    tags: list[str] = factory(list)
    build_args: dict[str, str] = factory(dict)
    no_cache: bool = False
    network: str = "none"  # for RUN: none, bridge (a veth on the bridge, as `run` has) or host
    target: str = ""  # --target: the stage to stop at (default: the last)
    dockerfile_text: str | None = None  # `-f -` and `build -`: the Dockerfile itself, read from stdin
    context_tar: bytes | None = None  # `build - < context.tar`: the context as a tar (gzip, bzip2, xz)
    pull: bool = False  # --pull: ask the registry for a newer FROM image even when one is here


# -- events (the view turns them into docker's output) -----------------------------------------


@record(frozen=True)
class StepStarted:
    index: int
    total: int
    text: str


@record(frozen=True)
class UsingCache:
    pass


@record(frozen=True)
class RunningIn:
    container: str


@record(frozen=True)
class StepOutput:
    data: bytes


@record(frozen=True)
class RemovedContainer:
    container: str


@record(frozen=True)
class StepImage:
    image: Image | None  # None: FROM scratch, no image at all


@record(frozen=True)
class BuildWarning:
    text: str


@record(frozen=True)
class StageSkipped:
    stage: str  # "1 (test)"
    target: str


@record(frozen=True)
class TriggersStarted:
    count: int  # ONBUILD triggers of the FROM image, run now


Event = (StepStarted | UsingCache | RunningIn | StepOutput | RemovedContainer | StepImage | BuildWarning
         | StageSkipped | TriggersStarted)
Emit = Callable[[Event], None]


@record
class BuildResult:
    image: Image
    tags: list[str]
    steps: int
    cached: int
    seconds: float


class BuildStepFailed(RuntimeFailure):
    """A RUN whose command exited non-zero."""

    def __init__(self, message: str, hint: str = "", exit_code: int = 1) -> None:
        super().__init__(message, hint, status=exit_code or 1)  # docker build exits with the step's code
        self.exit_code = exit_code


def build(rt: Runtime, opts: BuildOptions, emit: Emit) -> BuildResult:
    """Build the Dockerfile in opts.context; tag the result. Raises CShellError at the failing line."""
    if opts.context_tar is None:
        return Builder(rt, opts, emit).run()
    with unpacked_context(rt, opts.context_tar) as directory:
        opts.context, opts.context_tar = directory, None
        if opts.dockerfile is not None:  # -f names a file inside the tar, as docker's
            opts.dockerfile = directory / opts.dockerfile
        return Builder(rt, opts, emit).run()


@contextlib.contextmanager
def unpacked_context(rt: Runtime, data: bytes) -> Iterator[Path]:
    """A tar on stdin becomes the context: unpacked (confined, as a layer is) into a temporary directory."""
    from cshell.engine.image.archive import unpack_layer

    rt.root.ensure()
    staging = rt.root.layers / f"build-{new_id()[:16]}.unpacking"  # reconcile removes it if we die
    try:
        staging.mkdir()
        (staging / "context.tar").write_bytes(data)
        unpack_layer(staging / "context.tar", staging / "context", rt.root.path)
        yield staging / "context"
    finally:
        with shielded():
            shutil.rmtree(staging, ignore_errors=True)


def read_dockerfile(opts: BuildOptions) -> tuple[BuildContext | None, Dockerfile]:
    if opts.context is not None and not opts.context.is_dir():
        raise NotFound(f"build context {opts.context} is not a directory",
                       "give the directory that holds the Dockerfile and the files to copy: build -t NAME DIR")
    context = BuildContext(opts.context) if opts.context is not None else None
    if opts.dockerfile_text is not None:
        return context, dockerfile.parse(opts.dockerfile_text.removeprefix("\ufeff"), "Dockerfile")
    if opts.context is None:
        raise UsageError("no build context and no Dockerfile", "build -t NAME DIR, or pipe one in: build - < Dockerfile")
    path = opts.dockerfile or opts.context / "Dockerfile"
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        where = f"no Dockerfile in {opts.context}" if opts.dockerfile is None else f"no such Dockerfile: {path}"
        raise NotFound(where, "write one (FROM busybox, then one instruction a line), or name it: -f FILE") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path.name} is not UTF-8 text ({e.reason})", "save the Dockerfile as UTF-8") from None
    return context, dockerfile.parse(text, path.name)


class Builder:
    def __init__(self, rt: Runtime, opts: BuildOptions, emit: Emit) -> None:
        if opts.network == "default":
            opts.network = "bridge"  # docker's name for it
        if opts.network not in NETWORKS:
            raise UsageError(f"unknown network mode {opts.network!r}",
                             "use --network none (the default), bridge or host")
        self.rt, self.store, self.opts, self.emit = rt, rt.store, opts, emit
        self.cache = buildcache.BuildCache(rt.root)
        self.images: dict[str, Image] = {}  # every image in the store by id (untagged too)
        self.image: Image | None = None  # the last step's image
        self.config: dict[str, Any] = {}
        self.layers: list[Layer] = []
        self.parent = "scratch"  # the cache key's parent: an image id
        self.meta_args: dict[str, str | None] = {}  # ARGs before FROM: only FROM sees them
        self.args: dict[str, str | None] = {}  # ARGs of the stage
        self.declared: set[str] = set()  # ARGs of every stage built: a --build-arg they name is used
        self.cmd_set = False
        self.in_stage = False  # after FROM
        self.cached = 0
        self.escape = "\\"
        self.stages: list[Stage] = []
        self.built: dict[int, Image | None] = {}  # stage index -> its image (None: scratch, nothing in it)
        self.step_no, self.total, self.stage_index = 0, 0, 0

    # -- the whole build -------------------------------------------------------------------

    def run(self) -> BuildResult:
        started = time.monotonic()
        for ref in self.opts.tags:
            normalize_ref(ref)  # a bad name fails before anything is built
        self.context, df = read_dockerfile(self.opts)
        self.escape, self.stages = df.escape, df.stages()
        self.rt.root.ensure()
        self.images = {image.id: image for image in self.store.list(all=True)}
        for ins in df.meta:  # ARGs before FROM: values for the FROM lines
            self.arg(ins)
        target = self.target()
        needed = self.needed(df, target)  # checks every stage reference: nothing is built before
        self.total = len(df.meta) + sum(len(s.instructions) for s in self.stages if s.index in needed)
        self.step_no = len(df.meta)
        for index, ins in enumerate(df.meta, 1):
            self.emit(StepStarted(index, self.total, ins.original))
        for stage in self.stages[:target.index + 1]:
            if stage.index not in needed:
                self.emit(StageSkipped(stage.label, target.label))
                continue
            self.run_stage(df, stage)
        if self.image is None:
            raise UsageError("no image was generated: the Dockerfile only says FROM scratch",
                             "COPY something into it, e.g. COPY busybox /bin/busybox")
        self._warn_unused_args()
        for ref in self.opts.tags:
            self.store.tag(ref, self.image)
        tags = [normalize_ref(ref) for ref in self.opts.tags]
        return BuildResult(self.image, tags, self.total, self.cached, time.monotonic() - started)

    def run_stage(self, df: Dockerfile, stage: Stage) -> None:
        self.stage_index = stage.index
        for ins in stage.instructions:
            self.step_no += 1
            self.emit(StepStarted(self.step_no, self.total, ins.original))
            try:
                self.step(ins, self.step_no, self.total)
                if ins.keyword == "FROM":
                    self.run_triggers(df, ins)
            except DockerfileError:
                raise
            except CShellError as e:
                raise located(df, ins, e) from None
        self.built[stage.index] = self.image

    def run_triggers(self, df: Dockerfile, ins: Instruction) -> None:
        """ONBUILD: the FROM image's triggers run now, as if written after FROM; then they are gone."""
        settings = self.config.get("config") or {}
        triggers = list(settings.get("OnBuild") or [])
        if not triggers:
            return
        settings["OnBuild"] = None  # docker: triggers fire once, in the direct child only
        self.emit(TriggersStarted(len(triggers)))
        trace.step(f"ONBUILD: {len(triggers)} trigger(s) recorded in {self.image.short_id if self.image else ''}'s "
                   "config run now, before the next line")
        for text in triggers:
            inner = dockerfile.trigger(Instruction(ins.line, "ONBUILD", f"ONBUILD {text}", text), df.name)
            self.step(inner, self.step_no, self.total)

    # -- stages --------------------------------------------------------------------------------

    def target(self) -> Stage:
        """--target NAME (a stage's name, as docker: not its index), else the last stage."""
        if not self.opts.target:
            return self.stages[-1]
        wanted = self.opts.target.lower()
        for stage in self.stages:
            if stage.name == wanted:
                return stage
        names = ", ".join(s.name for s in self.stages if s.name) or "none (name one: FROM IMAGE AS NAME)"
        raise UsageError(f"failed to reach build target {self.opts.target} in Dockerfile",
                         f"--target takes a stage's name; the stages named here: {names}")

    def stage_ref(self, value: str, before: int) -> Stage | None:
        """The stage a FROM or COPY --from names (by name or index), if it is one built before ``before``."""
        ref = value.lower()
        for stage in self.stages:
            if (stage.name and stage.name == ref) or (ref.isdigit() and int(ref) == stage.index):
                return stage if stage.index < before else None
        return None

    def dependencies(self, df: Dockerfile, stage: Stage) -> list[Stage]:
        """Earlier stages this one uses: its FROM and its COPY --from (checked: no cycle, no unknown index)."""
        out = []
        base = self.stage_ref(self.meta_word(stage.base), stage.index)
        if base is not None:
            out.append(base)
        for ins in stage.instructions:
            if ins.keyword not in ("COPY", "ADD") or "from" not in ins.flags:
                continue
            if ins.keyword == "ADD":
                raise df.error(ins, "ADD --from is not a flag of ADD", "use COPY --from=STAGE SRC DEST")
            value = self.meta_word(ins.flags["from"])
            found = self.stage_ref(value, stage.index)
            if found is not None:
                out.append(found)
            elif value.isdigit():
                raise df.error(ins, f"COPY --from={value}: stage {value} is not built before this one "
                               f"(stages 0 to {stage.index - 1} are)" if stage.index else
                               f"COPY --from={value}: there is no stage before this one",
                               "stages are numbered from 0 in the order of their FROM lines")
            elif any(s.name == value.lower() for s in self.stages[stage.index:]):
                raise df.error(ins, f"COPY --from={value}: circular dependency: stage {value} is this stage or "
                               "comes after it", "a stage can only copy from the stages above it")
        return out

    def needed(self, df: Dockerfile, target: Stage) -> set[int]:
        """The target and every stage it depends on, transitively; the rest is skipped."""
        deps = {stage.index: self.dependencies(df, stage) for stage in self.stages[:target.index + 1]}
        needed, todo = set(), [target.index]
        while todo:
            index = todo.pop()
            if index not in needed:
                needed.add(index)
                todo += [d.index for d in deps[index]]
        self.check_copy_images(df, needed)
        return needed

    def check_copy_images(self, df: Dockerfile, needed: set[int]) -> None:
        """COPY --from=IMAGE: the image must exist (or be made here) before the build starts."""
        for stage in self.stages:
            if stage.index not in needed:
                continue
            for ins in stage.instructions:
                value = self.meta_word(ins.flags.get("from", ""))
                if ins.keyword == "COPY" and value and self.stage_ref(value, stage.index) is None:
                    self.source_image(df, ins, value, stage.index)

    def source_image(self, df: Dockerfile, ins: Instruction, value: str, before: int) -> Image:
        try:
            image = self.store.get(value)
        except CShellError:
            names = ", ".join(s.name for s in self.stages[:before] if s.name)
            stages = f"the stages before it: {names}" if names else "no named stage comes before it"
            raise df.error(ins, f"COPY --from={value}: no such stage or image",
                           f"--from takes a stage name or index ({stages}), or an image `images` lists") from None
        self.images[image.id] = image
        return image

    def meta_word(self, text: str) -> str:
        return expand(text, self._meta_env(), self.escape)

    def step(self, ins: Instruction, index: int, total: int) -> None:
        if ins.keyword == "FROM":
            self.from_(ins)
        elif ins.keyword == "ARG":
            self.arg(ins)
        elif ins.keyword == "RUN":
            self.run_step(ins, index, total)
        elif ins.keyword == "COPY" and "from" in ins.flags:
            self.copy_from_step(ins)
        elif ins.keyword in ("ADD", "COPY"):
            self.copy_step(ins)
        elif ins.keyword == "WORKDIR":
            self.workdir_step(ins)
        else:
            self.settings_step(ins)

    # -- FROM and ARG --------------------------------------------------------------------------

    def from_(self, ins: Instruction) -> None:
        self.in_stage, self.args, self.cmd_set = True, {}, False  # a stage starts afresh (ARGs too)
        ref = self.meta_word(ins.value.split()[0])
        if ins.flags.get("platform"):
            self.emit(BuildWarning(f"FROM --platform={ins.flags['platform']} is ignored: cshell builds for "
                                   "this machine"))
        stage = self.stage_ref(ref, self.stage_index)
        if stage is not None:
            trace.step(f"FROM {ref}: the image stage {stage.label} built")
            self.from_stage(stage)
            return
        if ref == "scratch":
            trace.step("FROM scratch: an empty root filesystem, no layers yet")
            self.config = {"architecture": ARCH.get(os.uname().machine, os.uname().machine), "os": "linux",
                           "config": {"Env": [DEFAULT_PATH]}, "history": []}
            self.emit(StepImage(None))
            return
        image = self.pull_base(ref) if self.opts.pull else self.store.get(ref)  # a missing busybox is made here
        self.images[image.id] = image
        self.use(image)
        self.emit(StepImage(image))

    def pull_base(self, ref: str) -> Image:
        """--pull: the registry's current image for ref. Unreachable (Docker Hub is, from here): the local one, said."""
        from cshell.engine.registry.distribution import Unreachable
        from cshell.engine.registry.pull import pull

        trace.step(f"--pull: GET the manifest of {ref} from its registry, even though an image may be here")
        try:
            return pull(self.store, ref).image
        except Unreachable as e:
            local = self.store.find(ref)
            if local is None:
                return self.store.get(ref)  # made here (busybox), or the one-line error
            self.emit(BuildWarning(f"--pull: {e.message}; building on the local {ref} ({local.short_id})"))
            return local

    def from_stage(self, stage: Stage) -> None:
        image = self.built[stage.index]
        if image is None:
            self.image, self.parent, self.layers = None, "scratch", []
            self.config = {"architecture": ARCH.get(os.uname().machine, os.uname().machine), "os": "linux",
                           "config": {"Env": [DEFAULT_PATH]}, "history": []}
        else:
            self.use(image)
        self.emit(StepImage(self.image))

    def use(self, image: Image) -> None:
        self.image, self.parent = image, image.id
        self.config = copy.deepcopy(image.config)
        self.config.pop("container", None)
        self.layers = list(image.layers)

    def arg(self, ins: Instruction) -> None:
        pairs = dockerfile.arg_pairs(ins.value, self.escape)
        if not self.in_stage:  # before FROM: meta args, for FROM only
            for name, default in pairs:
                value = expand(default, self._meta_env(), self.escape) if default is not None else None
                self.meta_args[name] = self.opts.build_args.get(name, value)
            return
        shown = []
        for name, default in pairs:
            value = expand(default, self.env(), self.escape) if default is not None else None
            if name in self.opts.build_args:
                self.args[name] = self.opts.build_args[name]
            else:
                self.args[name] = value if value is not None else self.meta_args.get(name)
            self.declared.add(name)
            shown.append(name if value is None else f"{name}={value}")
        self.commit_settings(f"ARG {' '.join(shown)}", self.settings())

    def _meta_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta_args.items() if v is not None}

    # -- settings-only instructions: empty layers ---------------------------------------------------

    def settings(self) -> dict[str, Any]:
        return copy.deepcopy(self.config.get("config") or {})

    def env(self) -> dict[str, str]:
        """What $VAR means here: the stage's ARGs, overridden by ENV (as docker)."""
        env = {k: v for k, v in self.args.items() if v is not None}
        env.update(item.split("=", 1) for item in self.settings().get("Env") or [] if "=" in item)
        return env

    def shell(self) -> list[str]:
        return list(self.settings().get("Shell") or DEFAULT_SHELL)

    def settings_step(self, ins: Instruction) -> None:
        settings = self.settings()
        desc = self.apply_setting(ins, settings)
        self.commit_settings(desc, settings)

    def apply_setting(self, ins: Instruction, settings: dict[str, Any]) -> str:
        """Change the settings as the instruction says; return its history text (docker's)."""
        handler = {
            "ENV": self._set_pairs, "LABEL": self._set_pairs, "CMD": self._set_command,
            "ENTRYPOINT": self._set_command, "SHELL": self._set_command, "WORKDIR": self._set_workdir,
            "EXPOSE": self._set_expose, "VOLUME": self._set_volume, "MAINTAINER": self._set_maintainer,
            "ONBUILD": self._set_onbuild, "HEALTHCHECK": self._set_health,
        }.get(ins.keyword, self._set_plain)
        return handler(ins, settings)

    def word(self, text: str) -> str:
        return expand(text, self.env(), self.escape)

    def _set_pairs(self, ins: Instruction, settings: dict[str, Any]) -> str:
        # Every value is expanded with the ENV from before this line, as docker does.
        env = self.env()
        pairs = [(expand(k, env, self.escape), expand(v, env, self.escape))
                 for k, v in dockerfile.name_values(ins.value, ins.keyword, self.escape)]
        if ins.keyword == "ENV":
            current = dict(item.split("=", 1) for item in settings.get("Env") or [] if "=" in item)
            current.update(pairs)
            settings["Env"] = [f"{k}={v}" for k, v in current.items()]
        else:
            settings["Labels"] = {**(settings.get("Labels") or {}), **dict(pairs)}
        return f"{ins.keyword} " + " ".join(f"{k}={v}" for k, v in pairs)

    def _set_command(self, ins: Instruction, settings: dict[str, Any]) -> str:
        argv = self.command(ins)
        if ins.keyword == "SHELL":
            settings["Shell"] = argv
            return f"SHELL [{' '.join(argv)}]"
        if ins.keyword == "CMD":
            settings["Cmd"] = argv
            self.cmd_set = True
        else:
            settings["Entrypoint"] = argv
            if not self.cmd_set:  # docker: an ENTRYPOINT drops the CMD it inherited, not one set here
                settings["Cmd"] = None
        return f"{ins.keyword} [{' '.join(json.dumps(a) for a in argv)}]"

    def _set_workdir(self, ins: Instruction, settings: dict[str, Any]) -> str:
        path = posixpath.join(settings.get("WorkingDir") or "/", self.word(ins.value))
        settings["WorkingDir"] = posixpath.normpath(path)
        return f"WORKDIR {settings['WorkingDir']}"

    def _set_expose(self, ins: Instruction, settings: dict[str, Any]) -> str:
        ports = [self.word(p) for p in ins.value.split()]
        for port in ports:
            dockerfile.check_port(port)
        imageconfig.apply(settings, "EXPOSE", " ".join(ports))
        return f"EXPOSE {' '.join(ports)}"

    def _set_volume(self, ins: Instruction, settings: dict[str, Any]) -> str:
        paths = [self.word(p) for p in imageconfig.json_or_words(ins.value)]
        imageconfig.apply(settings, "VOLUME", json.dumps(paths))
        return f"VOLUME [{' '.join(paths)}]"

    def _set_maintainer(self, ins: Instruction, settings: dict[str, Any]) -> str:
        self.config["author"] = self.word(ins.value)
        return f"MAINTAINER {self.config['author']}"

    def _set_onbuild(self, ins: Instruction, settings: dict[str, Any]) -> str:
        # Kept as written (not expanded): it runs in a later build, with that build's ARGs and ENV.
        settings["OnBuild"] = [*(settings.get("OnBuild") or []), ins.value]
        return f"ONBUILD {ins.value}"

    def _set_health(self, ins: Instruction, settings: dict[str, Any]) -> str:
        settings["Healthcheck"] = dockerfile.healthcheck(ins)
        return ins.original

    def _set_plain(self, ins: Instruction, settings: dict[str, Any]) -> str:
        value = self.word(ins.value)  # USER, STOPSIGNAL
        imageconfig.apply(settings, ins.keyword, value)
        return f"{ins.keyword} {value}"

    def command(self, ins: Instruction) -> list[str]:
        """Exec form as written, shell form wrapped in the SHELL (/bin/sh -c); never expanded."""
        argv = imageconfig.exec_form(ins.value)
        if argv is not None:
            return argv
        if dockerfile.looks_like_json(ins.value):
            self.emit(BuildWarning(f"{ins.keyword} {ins.value} is not valid JSON, so it runs as a shell command "
                                   f"(docker does the same); write [\"a\", \"b\"] with double quotes and commas"))
        return [*self.shell(), ins.value]

    def commit_settings(self, desc: str, settings: dict[str, Any]) -> None:
        created_by = " ".join([*self.shell(), "#(nop) ", desc])  # docker's classic builder, two spaces
        key = buildcache.key(self.parent, created_by)
        if self.from_cache(key):
            return
        self.record(key, settings, created_by, None)

    # -- the cache and the step images ------------------------------------------------------------

    def from_cache(self, key: str) -> bool:
        if self.opts.no_cache:
            return False
        image_id = self.cache.lookup(key, set(self.images))
        if image_id is None:
            trace.step(f"build cache: no image for key {key[7:19]} (parent {self.parent[7:19] or self.parent}, "
                       "this instruction): the step runs")
            return False
        trace.step(f"build cache: {key[7:19]} -> image {image_id[7:19]}  # same parent, same instruction")
        self.use(self.images[image_id])
        self.cached += 1
        self.emit(UsingCache())
        self.emit(StepImage(self.image))
        return True

    def record(self, key: str, settings: dict[str, Any], created_by: str, layer: Layer | None) -> None:
        """Write the step's image (untagged, like docker's intermediate images) and cache it."""
        config = copy.deepcopy(self.config)
        config["config"] = settings
        stamp = now()
        config["created"] = stamp
        entry: dict[str, Any] = {"created": stamp, "created_by": created_by}
        if layer is None:
            entry["empty_layer"] = True
        config["history"] = [*config.get("history", []), entry]
        image = self.store.write_image(config, [*self.layers, *([layer] if layer else [])])
        self.images[image.id] = image
        self.cache.remember(key, image.id, self._exists)
        self.use(image)
        self.emit(StepImage(image))

    def _exists(self, image_id: str) -> bool:
        """An image's config blob is there until `image prune`/`rmi` collects it."""
        try:
            return image_id in self.images or self.store.blob_path(image_id).exists()
        except CShellError:
            return False

    def new_layer(self, upper: Path) -> Layer | None:
        """An upper dir as the next layer: tar it into the blob store, then move it into place."""
        if not any(os.scandir(upper)):
            return None  # nothing changed: an empty layer, no diff id (image-spec's empty_layer)
        trace.step(f"tar -c -C {upper} . | sha256sum  # the changes become the layer tar (whiteouts as .wh.)")
        digest, size = images.layer_tar_of(self.store, upper, purpose="build")
        layer = self.store.layer_from_blob(digest, size, self.layers[-1] if self.layers else None, unpack=False)
        if self.store.adopt_layer_dir(layer, upper):
            trace.step(f"mv {upper} {layer.path}  # the same files: no need to unpack the tar again")
        return layer

    # -- RUN ------------------------------------------------------------------------------------------

    def run_step(self, ins: Instruction, index: int, total: int) -> None:
        argv = self.command(ins)
        env_names = {item.split("=", 1)[0] for item in self.settings().get("Env") or []}
        args = sorted((k, v) for k, v in self.args.items() if v is not None and k not in env_names)
        created_by = " ".join(argv)
        if args:  # docker's classic builder: the build args a RUN saw are part of its record
            created_by = f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in args) + " " + created_by
        key = buildcache.key(self.parent, created_by)
        if self.from_cache(key):
            return
        if self.image is None:
            raise UsageError("RUN on scratch: the image has no files yet, so there is nothing to run",
                             "COPY a static binary in first, e.g. COPY busybox /bin/busybox")
        layer = self.run_container(argv, [f"{k}={v}" for k, v in args], index, total)
        self.record(key, self.settings(), created_by, layer)

    def run_container(self, argv: list[str], env: list[str], index: int, total: int) -> Layer | None:
        from cshell.engine.container.containers import RunOptions

        assert self.image is not None
        settings = self.settings()
        c = self.rt.create(RunOptions(image=self.image.id, cmd=argv, env=env, entrypoint=[],
                                      workdir=settings.get("WorkingDir") or None,
                                      user=settings.get("User") or "",  # the USER so far, as docker's RUN
                                      network=self.opts.network, builder=True))
        try:
            self.emit(RunningIn(c.id))
            try:
                launch = self.rt.launch(c, attached=False)
            except ContainerCommandError as e:  # the command cannot start (127: not found)
                failed = BuildStepFailed(f"step {index}/{total}: {e.message}", e.hint, e.exit_code)
                failed.status = 1  # the runtime could not start it: docker build's error, 1
                raise failed from None
            code = self.follow(launch, c)
            if code != 0:
                raise BuildStepFailed(f"step {index}/{total}: the command '{' '.join(argv)}' returned a "
                                      f"non-zero code: {code}",
                                      "its output is above; fix the command and build again "
                                      "(the steps before it come from the cache)", exit_code=code)
            return self.new_layer(Path(c.rootfs_plan().upperdir))
        finally:
            with shielded():
                self.remove_container(c)
            self.emit(RemovedContainer(c.id))

    def remove_container(self, c: Container) -> None:
        if c.dir.exists():
            self.rt.remove(c, force=True)

    def follow(self, launch: Launch, c: Container) -> int:
        """Stream the container's log as it grows until the shim reports the exit code."""
        channel, log, ended = launch.channel, None, False
        try:
            while True:
                ready, _, _ = select.select([channel.status_r], [], [], 0.05)
                if ready:
                    data = os.read(channel.status_r, 4096)
                    ended = not data
                    channel.feed(data)
                if log is None:
                    with contextlib.suppress(FileNotFoundError):
                        log = open(c.log_path, "rb")  # noqa: SIM115 - closed below
                if log is not None and (chunk := log.read()):
                    self.emit(StepOutput(chunk))
                if ended or channel.exit_code is not None:
                    return channel.exit_code if channel.exit_code is not None else 255
        finally:
            if log is not None:
                log.close()
            channel.close()

    # -- WORKDIR --------------------------------------------------------------------------------------

    def workdir_step(self, ins: Instruction) -> None:
        """docker's classic builder makes the directory now, in a step container it commits: a
        new directory is a layer of its own; one the image already has changes nothing, and
        the step stays an empty layer (history only)."""
        settings = self.settings()
        desc = self._set_workdir(ins, settings)
        created_by = " ".join([*self.shell(), "#(nop) ", desc])
        key = buildcache.key(self.parent, created_by)
        if self.from_cache(key):
            return
        layer = None
        if self.image is not None:  # FROM scratch: nothing to make it in, as docker
            layer = self.workdir_layer(settings["WorkingDir"])
        self.record(key, settings, created_by, layer)

    def workdir_layer(self, path: str) -> Layer | None:
        from cshell.engine.build import copy as buildcopy

        staging = self.store.root.layers / f"build-{new_id()[:16]}.unpacking"  # reconcile removes it if we die
        try:
            self.store.ensure_unpacked(self.image)
            header = {"dest": path, "single": False, "chown": None, "chmod": None}
            upper = buildcopy.copy_into(staging, [layer.path for layer in self.layers], header, _empty_tar)
            return self.new_layer(upper)
        finally:
            with shielded():
                shutil.rmtree(staging, ignore_errors=True)

    # -- ADD and COPY -----------------------------------------------------------------------------------

    def copy_step(self, ins: Instruction) -> None:
        if self.context is None:
            raise UsageError(f"{ins.keyword} needs a build context, and this build has none (`build -`: the "
                             "Dockerfile came from stdin)",
                             "give the directory to copy from: build -f - DIR < Dockerfile (or COPY --from=STAGE)")
        env = self.env()
        words = [expand(w, env, self.escape) for w in imageconfig.json_or_words(ins.value)]
        sources, dest = words[:-1], words[-1]
        chown = expand(ins.flags["chown"], env, self.escape) if "chown" in ins.flags else None
        chmod = _chmod(ins.flags.get("chmod"))
        plan = self.context.plan(sources, ins.keyword, extract_archives=ins.keyword == "ADD")
        target = self.destination(dest, plan.sources, ins.keyword)
        owner = f"--chown={chown} " if chown else ""
        created_by = " ".join([*self.shell(), f"#(nop) {ins.keyword} {owner}{plan.label} in {target} "])
        key = buildcache.key(self.parent, created_by, f"{plan.digest} chmod={chmod}")
        if self.from_cache(key):
            return
        header = {"dest": target, "single": plan.single_file, "chown": chown, "chmod": chmod}
        layer = self.copy_layer(plan, header, f"{ins.keyword} {plan.label[:17]}")
        self.record(key, self.settings(), created_by, layer)

    def destination(self, dest: str, sources: int, keyword: str) -> str:
        """DEST inside the image: relative to WORKDIR; a trailing / (or .) means a directory."""
        is_dir = dest.endswith("/") or posixpath.basename(dest) in (".", "..")
        if sources > 1 and not is_dir:
            raise UsageError(f"when using {keyword} with more than one source file, the destination must be a "
                             "directory and end with a /", f"e.g. {keyword} a.txt b.txt /app/")
        path = posixpath.normpath(posixpath.join(self.settings().get("WorkingDir") or "/", dest))
        return path + "/" if is_dir and path != "/" else path

    def copy_from_step(self, ins: Instruction) -> None:
        """COPY --from=STAGE|INDEX|IMAGE: files of another image's root, read inside that root."""
        from cshell.engine.build import copy as buildcopy

        env = self.env()
        value = self.meta_word(ins.flags["from"])
        stage = self.stage_ref(value, self.stage_index)
        if stage is not None and stage.index not in self.built:  # an ONBUILD trigger may name any stage
            raise UsageError(f"COPY --from={value}: stage {stage.label} was not built (the target does not need "
                             "it)", "build it too: name it in the target's own COPY --from or FROM")
        source = self.built[stage.index] if stage is not None else self.store.get(value)
        if source is None:
            raise UsageError(f"COPY --from={value}: stage {stage.label if stage else value} has no files "
                             "(FROM scratch and nothing added)", "copy from a stage that has files")
        words = [expand(w, env, self.escape) for w in imageconfig.json_or_words(ins.value)]
        sources, dest = words[:-1], words[-1]
        chown = expand(ins.flags["chown"], env, self.escape) if "chown" in ins.flags else None
        chmod = _chmod(ins.flags.get("chmod"))
        target = self.destination(dest, len(sources), ins.keyword)
        owner = f"--chown={chown} " if chown else ""
        created_by = " ".join([*self.shell(), f"#(nop) COPY {owner}--from={value} {' '.join(sources)} in {target} "])
        # The source image is content-addressed: its id and the paths name exactly what is copied.
        key = buildcache.key(self.parent, created_by, f"{source.id} chmod={chmod}")
        if self.from_cache(key):
            return
        staging = self.store.root.layers / f"build-{new_id()[:16]}.unpacking"  # reconcile removes it if we die
        try:
            self.store.ensure_unpacked(source)
            if self.image is not None:
                self.store.ensure_unpacked(self.image)
            tar, count, single = buildcopy.export_from(staging, [layer.path for layer in source.layers], sources)
            target = self.destination(dest, count, ins.keyword)  # wildcards may have matched several
            header = {"dest": target, "single": single, "chown": chown, "chmod": chmod}
            send = lambda out: _send_file(tar, out)  # noqa: E731
            layer = self.new_layer(buildcopy.copy_into(staging, [layer.path for layer in self.layers], header, send))
        finally:
            with shielded():
                shutil.rmtree(staging, ignore_errors=True)
        self.record(key, self.settings(), created_by, layer)

    def copy_layer(self, plan: CopyPlan, header: dict[str, Any], label: str) -> Layer | None:
        from cshell.engine.build import copy as buildcopy

        staging = self.store.root.layers / f"build-{new_id()[:16]}.unpacking"  # reconcile removes it if we die
        try:
            if self.image is not None:
                self.store.ensure_unpacked(self.image)
            send = lambda out: write_tar(plan, out, self.progress(label, plan.total, staging))  # noqa: E731
            upper = buildcopy.copy_into(staging, [layer.path for layer in self.layers], header, send)
            return self.new_layer(upper)
        finally:
            with shielded():
                shutil.rmtree(staging, ignore_errors=True)

    def progress(self, label: str, total: int, staging: Path) -> Callable[[int], None] | None:
        if total < PROGRESS_MIN:
            return None
        last = [0.0]

        def report(done: int) -> None:
            if done - last[0] >= total / 100 or done >= total:
                last[0] = done
                trace.progress(label, min(done, total), total, "bytes")
                os.utime(staging)  # a step still in progress: reconcile leaves young dirs alone
        return report

    def _warn_unused_args(self) -> None:
        unused = sorted(set(self.opts.build_args) - self.declared - set(self.meta_args))
        if unused:
            self.emit(BuildWarning(f"one or more build-args [{' '.join(unused)}] were not consumed"))


def _empty_tar(out: IO[bytes]) -> None:
    """No files: the copy process only makes the destination directory (WORKDIR)."""
    import tarfile

    with tarfile.open(fileobj=out, mode="w|"):
        pass


def _send_file(path: Path, out: Any) -> None:
    with open(path, "rb") as f:
        shutil.copyfileobj(f, out, 1 << 20)


def _chmod(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise UsageError(f"invalid --chmod={text}", "an octal mode, e.g. --chmod=755 or --chmod=0644")
    return mode


def located(df: Dockerfile, ins: Instruction, e: CShellError) -> CShellError:
    """The same error, told at the instruction's line: `Dockerfile:5: ...`."""
    message = f"{df.name}:{ins.line}: {e.message}"
    try:
        out = copy.copy(e)
    except Exception:  # noqa: BLE001 - an error class with an unusual constructor
        out = CShellError(message, e.hint)
    out.message, out.args = message, (message,)
    out.line = ins.line  # type: ignore[attr-defined]
    return out


def shielded() -> contextlib.AbstractContextManager[None]:
    """Clean-up that a second Ctrl-C must not cut in half (the store stays consistent)."""
    from cshell.engine.kernel.terminal import sigint_handler

    return sigint_handler(signal.SIG_IGN)
