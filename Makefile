# Thin wrapper: CMake builds, scripts/ do the rest. `make demo` and `make test`
# install the Debian packages they need first (scripts/deps.sh).
BUILD ?= build
LUA ?= lua5.4
export LUA_PATH_5_4 := $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
export LUA_CPATH_5_4 := $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps build demo test bench docs lint clean

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: deps $(BUILD)/Makefile
	@cmake --build $(BUILD) -j2 >/dev/null

demo: build
	$(LUA) examples/basic_inspection.lua
	$(LUA) examples/luv_integration.lua

test: build
	@sh scripts/test.sh

bench: build
	@$(LUA) bench/run.lua

docs: deps
	@sh scripts/docs.sh

lint: deps
	luacheck -q .

clean:
	rm -rf $(BUILD) build-asan
