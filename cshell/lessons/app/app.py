"""The lesson's web app: one page that greets $NAME and shows the container's hostname.

The hostname is the short container id (cshell sets it like docker does), so
the page tells which container answered.
"""

import os
import socket

from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello() -> str:
    name = os.getenv("NAME", "world")
    return f"<h3>Hello {name}!</h3><b>Hostname:</b> {socket.gethostname()}<br/>"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=80)
