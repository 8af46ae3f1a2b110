"""Registries: the OCI distribution API, from a reference to blobs on the wire.

    distribution.py  endpoints and mirrors, the registry errors, and what pull and push
                     share (blob sources, concurrent transfers, progress)
    fetch.py         an image `run` or `build` needs that is not here: pulled, or a base
                     bootstrapped (handed to the image store by the Runtime)
    client.py        HTTP: connections (https, or http for insecure registries), redirects, errors, and auth (where the registry
                     token is fetched: Basic, or a Bearer token from the realm)
    config.py        ~/.cshell/config.json: logins, registry mirrors, insecure registries
    dockercfg.py     what Docker already set up: daemon.json (insecure registries, mirrors),
                     certs.d, and the CLI's logins (~/.docker/config.json, credential helpers)
    tls.py           https as Docker does it: certs.d CAs and client certificates, TLS errors
    login.py         `login` and `logout`: credentials checked against the registry, then kept
    pull.py          docker pull: manifest, config and layers, each checked before it is stored
    push.py          docker push: blobs (mounted, or sent in chunks), then the manifest

May import: image, events, state, trace.
"""
