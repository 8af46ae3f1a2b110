#!/bin/sh
# top-layer.sh IMAGE.tar: the entries of the top layer of an image written by `save`
# (manifest.json lists the layer tars bottom first; the last one is the newest).
tarball=${1:?usage: top-layer.sh IMAGE.tar}
top=$(tar -xOf "$tarball" manifest.json | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Layers"][-1])')
echo "top layer: $top"
tar -xOf "$tarball" "$top" | tar -t | sed 's|^\./||' | grep -v '^$' | sort
