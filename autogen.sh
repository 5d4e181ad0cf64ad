#!/bin/sh
# Regenerates configure and Makefile.in from configure.ac and Makefile.am,
# and copies Automake's TAP driver into build-aux/.
set -e
cd "$(dirname "$0")"
mkdir -p build-aux m4
cp -f "$(automake --print-libdir)/tap-driver.sh" build-aux/tap-driver.sh
autoreconf --install --force
