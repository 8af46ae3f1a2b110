#!/bin/sh
# registry.sh start DIR | stop DIR: a private image registry for a lesson, on 127.0.0.1.
# The server is Docker's own (the Debian package docker-registry), storing its
# blobs in DIR; `start` prints the address to push to, e.g. 127.0.0.1:40123.
set -e
dir=${2:?usage: registry.sh start|stop DIR}
case "$1" in
start)
    mkdir -p "$dir/data"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$dir/config.yml" <<CONFIG
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
CONFIG
    setsid docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
    echo $! > "$dir/pid"
    for _ in $(seq 100); do
        if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v2/', timeout=1)" 2>/dev/null; then
            echo "127.0.0.1:$port"
            exit 0
        fi
        sleep 0.1
    done
    echo "the registry did not start; its log: $dir/registry.log" >&2
    exit 1
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    ;;
*)
    echo "usage: registry.sh start|stop DIR" >&2
    exit 2
    ;;
esac
