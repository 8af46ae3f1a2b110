#!/bin/sh
# The busybox twin of app.py: write the page once (NAME can be set with -e),
# then serve /app/www on port 80 in the foreground as the container's process.
printf '<h3>Hello %s!</h3><b>Hostname:</b> %s<br/>' "${NAME:-world}" "$(hostname)" > /app/www/index.html
exec httpd -f -p 80 -h /app/www
