#!/bin/sh
# install-config.sh SAMPLE TARGET: meson install script.  Installs SAMPLE as
# TARGET (under $DESTDIR) unless a file is already there.
set -eu
target="${DESTDIR:-}$2"
if [ -e "$target" ]; then
	echo "Keeping $target (the sample is $1)"
	exit 0
fi
install -D -m 0644 "$1" "$target"
echo "Installing $1 to $target"
