#!/bin/sh
# Install the Debian packages the build, the tests and the demos need, when missing.
# Runs apt-get only if something is missing; needs root for that (CI and dev machines are root).
set -e
PKGS="lua5.4 liblua5.4-dev libuv1-dev lua-luv lua-luv-dev lua-busted lua-cjson lua-dkjson
lua-expat lua-check lua-ldoc lua-markdown luarocks cmake make gcc tmux valgrind chromium graphviz"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
