-- Paths and helpers shared by the specs: the checkout root, the module paths for child
-- processes, whether the C core is built, and a luv loop runner with a deadline.
local M = {}

local here = debug.getinfo(1, "S").source:sub(2)
M.ROOT = here:match("^(.*)/spec/helpers/env%.lua$")
if not M.ROOT or M.ROOT:sub(1, 1) ~= "/" then
  local pwd = os.getenv("PWD") or io.popen("pwd"):read("*l")
  M.ROOT = pwd .. "/" .. (M.ROOT or ".")
end
M.ROOT = M.ROOT:gsub("/%./", "/"):gsub("/%.$", "")
-- Children get the module paths of this process (the specs may run against another build,
-- e.g. build-asan with the sanitizer runtime preloaded) plus spec/helpers.
M.LUA_PATH = M.ROOT .. "/lua/?.lua;" .. M.ROOT .. "/lua/?/init.lua;" .. M.ROOT
  .. "/spec/helpers/?.lua;" .. (os.getenv("LUA_PATH_5_4") or ";")
M.LUA_CPATH = os.getenv("LUA_CPATH_5_4") or (M.ROOT .. "/build/?.so;;")

-- Environment strings for a child lua5.4: this process's environment with the paths above.
function M.child_env()
  local env = { "LUA_PATH_5_4=" .. M.LUA_PATH, "LUA_CPATH_5_4=" .. M.LUA_CPATH }
  for k, v in pairs(require("luv").os_environ()) do
    if k ~= "LUA_PATH_5_4" and k ~= "LUA_CPATH_5_4" then env[#env + 1] = k .. "=" .. v end
  end
  return env
end

-- Shell prefix that runs lua5.4 with the module paths.
function M.shell_lua()
  return string.format("LUA_PATH_5_4='%s' LUA_CPATH_5_4='%s' lua5.4", M.LUA_PATH, M.LUA_CPATH)
end

-- Whether the C core can be loaded (async_inspect/core.so on the C path, and init.lua).
function M.core_available()
  if not package.searchpath("async_inspect.core", M.LUA_CPATH) then return false end
  local f = io.open(M.ROOT .. "/lua/async_inspect/init.lua", "rb")
  if not f then return false end
  f:close()
  local ok = pcall(require, "async_inspect")
  return ok
end

-- Run the luv loop until cond() is true or timeout_ms passed; returns cond().
function M.run_until(cond, timeout_ms)
  local uv = require("luv")
  local deadline = uv.now() + (timeout_ms or 5000)
  local wake = uv.new_timer()
  wake:start(10, 10, function() end)
  while not cond() and uv.now() < deadline do uv.run("once") end
  wake:close()
  uv.run("nowait")
  return cond()
end

-- A unique temporary file name.
function M.tmpname(suffix)
  local name = os.tmpname()
  os.remove(name)
  return name .. (suffix or "")
end

-- Read a whole file.
function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

return M
