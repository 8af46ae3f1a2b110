"""Registries: the OCI distribution API, from a reference to blobs on the wire.

    distribution.py  endpoints, mirrors, login, what pull and push share, and
                     ``fetch_missing`` (pull an image that is not here, or bootstrap it)
    client.py        HTTP: connections, redirects, errors, and auth (where the registry
                     token is fetched: Basic, or a Bearer token from the realm)
    config.py        ~/.cshell/config.json: logins, registry mirrors, insecure registries
    pull.py          docker pull: manifest, config and layers, each checked before it is stored
    push.py          docker push: blobs (mounted, or sent in chunks), then the manifest

May import: image, state, trace.
"""
