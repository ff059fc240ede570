# source env.sh: module paths for running from the checkout (the Makefile sets the same)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH_5_4="$ROOT/build/?.so;;"
