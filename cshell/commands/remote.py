"""Registries: pull, push, login, logout."""

from __future__ import annotations

import sys
from types import SimpleNamespace

from cshell.commands.context import Context
from cshell.commands.registry import IMAGE, Opt, Pos, command
from cshell.errors import UsageError

WORDS = """
**Words.** A *blob* is any content a registry stores, named by its sha256:
a layer (a tar, usually gzipped) or a config (JSON: the image's settings and
the sha256 of each uncompressed layer, its `diff_ids`). A *manifest* is a
small JSON that lists one image's config and layers by digest; its own
sha256 is the image's *digest* (`NAME@sha256:…` names exactly that content,
forever). An *index* (Docker: manifest list) lists one manifest per platform
(linux/amd64, linux/arm64, …): `pull` picks the one for this machine. A *tag*
(`:latest`, `:v1`) is the only name a registry can move.
"""

AUTH = """
**Login.** The first request goes out anonymously. A `401` answer says how to
authenticate (`WWW-Authenticate`): `Basic` means send user and password
with every request; `Bearer realm=URL,service=…,scope=repository:NAME:pull`
(Docker Hub, most registries) means ask the token server at URL for a
short-lived token for exactly that scope, sending the login there (or
nothing, for public images), then retry with `Authorization: Bearer TOKEN`.
Logins are stored by `login` in `~/.cshell/config.json` (or the file
`$CSHELL_CONFIG` names), Docker's `auths` format, mode 0600. Without one there,
the login Docker's CLI has is used: `~/.docker/config.json` (or
`$DOCKER_CONFIG`), its `auths`, or the credential helper its `credsStore` or
`credHelpers` names (`docker-credential-NAME get`). Logins are never printed,
not even by `explain on`.
"""

TLS = """
**TLS, as Docker.** Registries are reached over https, their certificate checked
against the system's CAs and the `*.crt` files in
`/etc/docker/certs.d/HOST:PORT/` (or `~/.cshell/certs.d/HOST:PORT/`): a classroom
registry with its own CA works once its `ca.crt` is there. `client.cert` and
`client.key` there are sent to a registry that wants a client certificate
(mutual TLS). *Insecure* registries, loopback (127.0.0.1, localhost, ::1) and those
under `insecure-registries` in `/etc/docker/daemon.json` or cshell's config, are
tried over https without checking the certificate, then over plain http.
`$CSHELL_DOCKER_ETC` replaces `/etc/docker`.
"""


@command(
    "pull", "download an image from a registry (Docker Hub by default)",
    options=(Opt(("--platform",), "OS/ARCH (or OS/ARCH/VARIANT) to pick from a multi-platform index (default: this machine's)",
                 "PLATFORM"),
             Opt(("-q", "--quiet"), "print only the image's full name")),
    positionals=(Pos("image", "NAME[:TAG] or NAME@DIGEST, e.g. busybox, localhost:5000/app:v1", complete=IMAGE),),
    example="pull localhost:5000/geektime/helloworld:v1",
    group="images",
    docker="docker pull",
    details=WORDS + """
**What pull does.** `busybox` means `docker.io/library/busybox:latest`, as with
docker (the name here stays `busybox`). It asks for the manifest
(`GET /v2/NAME/manifests/TAG`); for an index it fetches the entry for this
machine by digest. Then the config, then the layers, three at a time, each
with its progress bar. Every blob is checked against its sha256 before
anything enters the store, and each layer once more after decompression
against the config's `diff_ids`; a layer the store already has is not
downloaded (`Already exists`). A cut connection resumes with a `Range`
request; an interrupted pull leaves its parts in `distribution/downloads`
under the state root, and the next pull resumes them. Nothing half-pulled is
ever in `images`.

Layers are stored uncompressed (overlayfs needs them unpacked anyway); the
config is kept as it is, so IMAGE ID is the same as docker's. The digest the
registry served is in `inspect --format '{{.RepoDigests}}' IMAGE`.

Docker Hub mirrors (`registry-mirrors` in `~/.cshell/config.json`, then in
Docker's `/etc/docker/daemon.json`) are tried first, in order. `run` and
`build` pull a missing image themselves; when no registry can be reached,
`busybox`, `debian:bookworm` and `python:3.11-slim` are built locally instead
(`image bootstrap`), and `CSHELL_OFFLINE=1` skips the network altogether.
""" + TLS + AUTH,
)
def pull(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.registry.pull import pull as do_pull
    from cshell.views.remote import pull_lines

    ctx.root.ensure()
    pulled = do_pull(ctx.runtime.store, args.image, platform=args.platform)
    for line in pull_lines(args.image, pulled, quiet=args.quiet):
        ctx.out.text(line)
    return 0


@command(
    "push", "upload an image to a registry",
    options=(Opt(("--compress",), "gzip the layers first (smaller; a new manifest digest)"),
             Opt(("-q", "--quiet"), "print only the digest line")),
    positionals=(Pos("image", "NAME[:TAG] of an image here, e.g. localhost:5000/app:v1", complete=IMAGE),),
    example="tag helloworld localhost:5000/geektime/helloworld:v1; push localhost:5000/geektime/helloworld:v1",
    group="images",
    docker="docker push",
    details=WORDS + """
**What push does.** The name says where: `localhost:5000/app:v1` goes to the
registry at localhost:5000, `geektime/helloworld:v1` to Docker Hub (`tag` an
image to give it such a name). For each layer and the config: `HEAD` asks
whether the registry already has the blob (`Layer already exists`: nothing is
sent); if another repository on that registry has it, a *cross-repository
mount* (`POST …/uploads/?mount=DIGEST&from=OTHER`) links it without sending
a byte (`Mounted from OTHER`); otherwise an upload session (`POST`) then one
`PUT ?digest=` with the bytes, or `PATCH` chunks for big blobs. The registry
verifies each digest. Last, `PUT /v2/NAME/manifests/TAG` names the image,
and the registry answers with the manifest's digest.

Layers go as the store keeps them, uncompressed tars (valid OCI layers), so
the digest printed is the image's own manifest digest; `--compress` gzips
them first. Pushing the same image again uploads nothing.
""" + TLS + AUTH,
)
def push(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.registry.push import push as do_push
    from cshell.views.remote import push_lines

    ctx.root.ensure()
    pushed = do_push(ctx.runtime.store, args.image, compress=args.compress)
    for line in push_lines(pushed, quiet=args.quiet):
        ctx.out.text(line)
    return 0


@command(
    "login", "log in to a registry (checks the login, then stores it)",
    options=(Opt(("-u", "--username"), "the user name", "USER"),
             Opt(("-p", "--password"), "the password (visible in your shell history: prefer --password-stdin)",
                 "PASSWORD"),
             Opt(("--password-stdin",), "read the password from stdin")),
    positionals=(Pos("server", "the registry (default: Docker Hub)", optional=True),),
    example="login -u student localhost:5000",
    group="images",
    needs_root=False,
    docker="docker login",
    details=AUTH + TLS + """
`login` first checks the login: `GET /v2/` on the registry with it (through
the token server when the registry uses tokens). Only if that succeeds is it
written to the config file (atomically, mode 0600), as Docker's
`{"auths": {"HOST:PORT": {"auth": base64(user:password)}}}`. base64 is not
encryption: the file's mode is the protection, as with docker. Without
`-u`/`-p` it asks for them on the terminal, without echoing the password.
""",
)
def login(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.registry.login import login as do_login

    user = args.username or _ask("Username: ", secret=False)
    password = _password(ctx, args)
    registry, path = do_login(args.server, user, password)
    ctx.out.note(f"the login for {registry} is stored in {path} (mode 0600, base64: not encrypted)")
    ctx.out.text("Login Succeeded")
    return 0


@command(
    "logout", "forget the login stored for a registry",
    positionals=(Pos("server", "the registry (default: Docker Hub)", optional=True),),
    example="logout localhost:5000",
    group="images",
    needs_root=False,
    docker="docker logout",
    details="Removes the registry's entry from `auths` in `~/.cshell/config.json` (or `$CSHELL_CONFIG`).",
)
def logout(ctx: Context, args: SimpleNamespace) -> int:
    from cshell.engine.registry.login import logout as do_logout

    registry, removed, docker_config = do_logout(args.server)
    ctx.out.text(f"Removing login credentials for {registry}" if removed else f"Not logged in to {registry}")
    if docker_config is not None:
        ctx.out.note(f"Docker's login for {registry} in {docker_config} stays, and cshell still uses it: "
                     f"docker logout {registry} removes it")
    return 0


def _password(ctx: Context, args: SimpleNamespace) -> str:
    if args.password_stdin:
        if args.password:
            raise UsageError("--password and --password-stdin are exclusive", "give one of them")
        if ctx.interactive or sys.stdin.isatty():
            raise UsageError("--password-stdin needs the password piped in",
                             "echo \"$PASSWORD\" | cshell login -u USER --password-stdin REGISTRY")
        return sys.stdin.readline().rstrip("\r\n")
    if args.password:
        ctx.out.note("WARNING! a password on the command line is visible to other users and in your "
                     "shell history. Use --password-stdin.")
        return args.password
    return _ask("Password: ", secret=True)


def _ask(prompt: str, secret: bool) -> str:
    if not sys.stdin.isatty():
        raise UsageError("login needs -u USER and a password (stdin is not a terminal to ask on)",
                         "echo \"$PASSWORD\" | cshell login -u USER --password-stdin REGISTRY")
    if secret:
        import getpass

        return getpass.getpass(prompt)
    return input(prompt).strip()
