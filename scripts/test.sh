#!/bin/bash
# make test: every suite, then one line "N passed, N failed" summing them all.
# Suites: C unit tests (ctest), luacheck, the LDoc reference, busted specs, the
# rock's install path, the specs again under AddressSanitizer +
# UndefinedBehaviorSanitizer.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
PASSED=0
FAILED=0
LOG=$(mktemp -d)
trap 'rm -rf "$LOG"' EXIT

export LUA_PATH_5_4="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
export LUA_CPATH_5_4="$ROOT/$BUILD/?.so;;"

count() { # name passed failed
  echo "== $1: $2 passed, $3 failed"
  PASSED=$((PASSED + $2))
  FAILED=$((FAILED + $3))
}

one() { # name command...: a suite that passes or fails as one test
  local name=$1; shift
  if "$@" >"$LOG/$name.out" 2>&1; then count "$name" 1 0
  else cat "$LOG/$name.out"; count "$name" 0 1; fi
}

busted_suite() { # name [env...]: the busted specs, counted per test
  local name=$1; shift
  env "$@" busted --lua=lua5.4 -o json spec >"$LOG/$name.json" 2>"$LOG/$name.err"
  local rc=$?
  if counts=$(lua5.4 scripts/busted_counts.lua "$LOG/$name.json"); then
    # shellcheck disable=SC2086
    set -- $counts
    if [ "$2" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$2" -eq 0 ]; }; then
      lua5.4 scripts/busted_counts.lua "$LOG/$name.json" --failures
      tail -n 30 "$LOG/$name.err"
      [ "$2" -eq 0 ] && set -- "$1" 1
    fi
    count "$name" "$1" "$2"
  else
    tail -n 60 "$LOG/$name.json" "$LOG/$name.err"
    count "$name" 0 1
  fi
}

# 1. C unit tests
if (cd "$BUILD" && ctest --output-on-failure) >"$LOG/ctest.out" 2>&1; then :; else cat "$LOG/ctest.out"; fi
c_pass=$(grep -c "Test *#[0-9]*: .* Passed" "$LOG/ctest.out")
c_fail=$(grep -c "\*\*\*Failed\|\*\*\*Exception\|Not Run" "$LOG/ctest.out")
count ctest "$c_pass" "$c_fail"

# 2. luacheck
one luacheck luacheck -q .

# 2b. the API reference builds from the sources without an LDoc complaint
one ldoc sh scripts/docs.sh

# 3. busted specs
busted_suite specs

# 4. the rock: build and install offline into a fresh tree, require from elsewhere
one rock sh scripts/check_rock.sh

# 5. the specs under AddressSanitizer and UndefinedBehaviorSanitizer
if [ "${AI_SKIP_ASAN:-0}" != 1 ]; then
  if cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAI_SANITIZE=ON >"$LOG/asan-build.out" 2>&1 &&
     cmake --build build-asan -j2 >>"$LOG/asan-build.out" 2>&1; then
    ASAN_LIB=$(gcc -print-file-name=libasan.so)
    UBSAN_LIB=$(gcc -print-file-name=libubsan.so)
    busted_suite asan-specs LD_PRELOAD="$ASAN_LIB $UBSAN_LIB" \
      ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      LUA_CPATH_5_4="$ROOT/build-asan/?.so;;" AI_UNDER_ASAN=1
  else
    cat "$LOG/asan-build.out"; count asan-build 0 1
  fi
fi

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
