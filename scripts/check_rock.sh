#!/bin/sh
# The install path users take: luarocks make into a fresh tree, offline, then
# require "async_inspect" from another directory with only that tree on the path.
set -e
cd "$(dirname "$0")/.."
TREE=$(mktemp -d)
trap 'rm -rf "$TREE"' EXIT
unset LUA_PATH_5_4 LUA_CPATH_5_4
luarocks --lua-version=5.4 --tree="$TREE" make --deps-mode=none async_inspect-scm-1.rockspec \
  LUA_INCDIR=/usr/include/lua5.4 >"$TREE/build.log" 2>&1 || { cat "$TREE/build.log"; exit 1; }
eval "$(luarocks --lua-version=5.4 --tree="$TREE" path)"
cd /
TREE_DIR="$TREE" lua5.4 -e '
  local ai = require "async_inspect"
  local co = coroutine.create(function() coroutine.yield() end)
  coroutine.resume(co)
  assert(ai.tasks()[1].state == "suspended", "task not tracked")
  assert(package.searchpath("async_inspect.core", package.cpath):find(os.getenv("TREE_DIR"), 1, true))
' 2>&1 || exit 1
"$TREE/bin/async-inspect" --version >/dev/null
