"""TLS to a registry, set up as Docker sets it up.

A registry is reached over https and its certificate verified against the system's
CAs plus the ``*.crt`` files in its certs.d directories::

    /etc/docker/certs.d/HOST:PORT/ca.crt        Docker's ($CSHELL_DOCKER_ETC/certs.d/...)
    ~/.cshell/certs.d/HOST:PORT/ca.crt          cshell's own, beside its config.json

``NAME.cert`` with ``NAME.key`` there is a client certificate, sent when the registry
asks for one (mutual TLS). A registry Docker treats as insecure (loopback addresses,
``insecure-registries``) is tried over https without verification first, then plain
http (client.py does the fallback).

Imported only with client.py (ssl costs import time a `run` does not pay).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from cshell.engine.registry import config as regconfig
from cshell.engine.registry import dockercfg
from cshell.errors import RuntimeFailure

CLIENT_CERT_ALERTS = ("SSLV3_ALERT_BAD_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED",
                      "SSLV3_ALERT_HANDSHAKE_FAILURE", "TLSV1_ALERT_UNKNOWN_CA")
PLAIN_HTTP = "WRONG_VERSION_NUMBER"  # OpenSSL's reason when the answer to ClientHello is an HTTP response
UNKNOWN_CA = ("unable to get local issuer certificate", "self-signed certificate", "self signed certificate",
              "self-signed certificate in certificate chain", "self signed certificate in certificate chain")


def certs_dirs(netloc: str) -> list[Path]:
    """Where the registry's CA and client certificates are looked for, Docker's first."""
    return [dockercfg.certs_d() / netloc, regconfig.path().parent / "certs.d" / netloc]


def context(netloc: str, verify: bool, say: Callable[[str], None] | None = None,
            client: bool = True) -> ssl.SSLContext:
    """The SSL context for the registry at ``netloc``: its certs.d CAs and (``client``) its client
    certificate. Its token server and redirects get the CAs only, and are always verified."""
    if verify:
        ctx = ssl.create_default_context()
    else:  # nothing is verified: skip loading the system's CAs (~30 ms)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for directory in certs_dirs(netloc):
        try:
            names = sorted(p.name for p in directory.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise RuntimeFailure(f"cannot read {directory}: {e.strerror}", "check its permissions") from None
        for name in names if client else [n for n in names if n.endswith(".crt")]:
            _load(ctx, directory, name, names, say)
    return ctx


def _load(ctx: ssl.SSLContext, directory: Path, name: str, names: list[str],
          say: Callable[[str], None] | None) -> None:
    """One file of a certs.d directory, by Docker's rules: .crt is a CA, .cert + .key a client pair."""
    path = directory / name
    tell = say or (lambda text: None)
    try:
        if name.endswith(".crt"):
            tell(f"# trust the CA in {path}")
            ctx.load_verify_locations(cafile=str(path))
        elif name.endswith(".cert"):
            key = name[: -len(".cert")] + ".key"
            if key not in names:
                raise RuntimeFailure(f"missing key {directory / key} for client certificate {path}",
                                     "a client certificate needs its key beside it; "
                                     "CA certificates must use the extension .crt")
            tell(f"# client certificate {path} (mutual TLS)")
            ctx.load_cert_chain(str(path), str(directory / key))
        elif name.endswith(".key") and name[: -len(".key")] + ".cert" not in names:
            raise RuntimeFailure(f"missing client certificate {directory / name[:-4]}.cert for key {path}",
                                 "put the certificate beside its key as NAME.cert")
    except (ssl.SSLError, OSError) as e:
        raise RuntimeFailure(f"cannot use {path}: {getattr(e, 'reason', None) or e}",
                             "a certs.d file must be PEM: ca.crt a CA, client.cert and client.key a pair") from None


def error(netloc: str, e: ssl.SSLError) -> RuntimeFailure:
    """A TLS failure as one line, with the hint that names the file to put in place."""
    dirs = certs_dirs(netloc)
    insecure = f"list {netloc} under insecure-registries in {dockercfg.daemon_json()}"
    if isinstance(e, ssl.SSLCertVerificationError):
        why = e.verify_message or str(e.reason)
        if why in UNKNOWN_CA:
            return RuntimeFailure(f"{netloc}'s TLS certificate is signed by an unknown authority ({why})",
                                  f"put the CA certificate in {dirs[0] / 'ca.crt'} "
                                  f"(or {dirs[1] / 'ca.crt'}), or {insecure}")
        return RuntimeFailure(f"{netloc}'s TLS certificate is not valid: {why}",
                              f"the registry needs a certificate for {netloc}; or {insecure}")
    if e.reason in CLIENT_CERT_ALERTS:
        return RuntimeFailure(f"{netloc} refused the TLS connection ({e.reason}): it wants a client certificate "
                              "it trusts (mutual TLS)",
                              f"put client.cert and client.key in {dirs[0]}/ (or {dirs[1]}/)")
    if e.reason == PLAIN_HTTP:
        return RuntimeFailure(f"TLS with {netloc} failed: it answers in plain http ({e.reason})",
                              f"Docker uses plain http only for insecure registries: {insecure}")
    return RuntimeFailure(f"TLS with {netloc} failed ({e.reason or e})",
                          f"if it speaks plain http, {insecure}")


def why(e: BaseException) -> str:
    """Why an https attempt failed, in a few words (for the explain line before the http fallback)."""
    if isinstance(e, ssl.SSLError) and e.reason == PLAIN_HTTP:
        return f"no TLS there, it answers in plain http ({e.reason})"
    return getattr(e, "message", None) or getattr(e, "reason", None) or str(e)
