"""Volumes and bind mounts: data that lives outside a container's layers.

    volumes.py     docker's local driver (ROOT/volumes/NAME/_data), and the -v, --mount
                   and --tmpfs specs (the mounts themselves are kernel/mounts.py)
    bindmount.py   the article's bind-mount demonstration, and `bind` into a running container

May import: kernel, events, state, trace.
"""
