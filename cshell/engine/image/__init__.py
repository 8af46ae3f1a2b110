"""Images: what an image is and where it is kept, before any container runs it.

    store.py        the image store: OCI layout (blobs, index, tags), layers unpacked once
                    per chain id, garbage collection; a missing image is fetched only by
                    the ``fetch`` its maker hands to ``Store`` (the Runtime: registry/fetch.py)
    reference.py    image names: NAME[:TAG][@DIGEST], and docker.io's defaults
    archive.py      layer tars in and out: where a layer is unpacked (whiteouts, safe tar)
    diff.py         a container's upper directory read as a layer (for commit and export)
    imageconfig.py  the settings an image carries (CMD, ENV, USER, ...), Docker's #(nop) steps
    load.py         docker load: an archive read as hostile, checked, then stored
    transfer.py     docker save: one tar that is a docker-archive and an OCI layout
    bootstrap.py    base images made on this machine (busybox, debian, python)
    mmdebstrap.py   a Debian root filesystem as a tar, for bootstrap

Removing an image (rmi, prune) must ask whether containers use it: build/commit.py.
The image package never imports registry (pull and push sit above it) nor container.
May import: kernel, events, state, trace.
"""
