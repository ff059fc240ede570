--- Run child processes from specs: lua5.4 scripts or the async-inspect command,
-- with a controlled environment, a timeout, and stdout, stderr and exit code
-- captured separately.
--
-- Children inherit LUA_PATH_5_4 / LUA_CPATH_5_4 (and LD_PRELOAD under the
-- sanitiser run) from the spec process; when those are unset they get the
-- checkout's lua/ and build/. Every ASYNC_INSPECT* variable of the parent is
-- removed so that only what a spec sets reaches the child.
local M = {}

-- the project root, absolute (children run in other directories)
local ROOT = (function()
  local dir = debug.getinfo(1, "S").source:match("^@(.*)/spec/support/process%.lua$")
  if dir == nil or dir == "" then dir = "." end
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    local cwd = p:read("l")
    p:close()
    dir = (dir == "." and cwd) or (cwd .. "/" .. dir:gsub("^%./", ""))
  end
  return dir
end)()
M.ROOT = ROOT

--- Variables removed from every child's environment.
M.INSPECT_VARS = {
  "ASYNC_INSPECT", "ASYNC_INSPECT_PRESET", "ASYNC_INSPECT_SAMPLE", "ASYNC_INSPECT_MAX_TASKS",
  "ASYNC_INSPECT_RING", "ASYNC_INSPECT_LOCATIONS", "ASYNC_INSPECT_LONG_POLL_MS",
  "ASYNC_INSPECT_CREATION_TRACES", "ASYNC_INSPECT_ASCII", "NO_COLOR",
}

--- Quote one word for /bin/sh.
-- @tparam string s
-- @treturn string
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_all(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

--- A fresh temporary directory, removed by `M.rmdir`.
-- @treturn string path
function M.tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

--- Remove a directory made by `tmpdir`.
-- @tparam string dir
function M.rmdir(dir)
  assert(dir:match("^/tmp/"), "refusing to remove " .. dir)
  os.execute("rm -rf " .. M.quote(dir))
end

--- Write `text` to `path`.
function M.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

--- Read a whole file (nil when it cannot be opened).
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function env_prefix(env)
  local parts = { "env" }
  for _, name in ipairs(M.INSPECT_VARS) do parts[#parts + 1] = "-u " .. name end
  if os.getenv("LUA_PATH_5_4") == nil then
    parts[#parts + 1] = "LUA_PATH_5_4=" .. M.quote(ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;")
  end
  if os.getenv("LUA_CPATH_5_4") == nil then
    parts[#parts + 1] = "LUA_CPATH_5_4=" .. M.quote(ROOT .. "/build/?.so;;")
  end
  local names = {}
  for k in pairs(env or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. M.quote(env[k]) end
  return table.concat(parts, " ")
end

--- Run a command line (argv array) and capture everything.
-- @tparam table argv words, quoted here
-- @tparam[opt] table opts `env` (table of variables), `timeout` (seconds, default 30),
--   `stdin` (text fed to the child), `cwd` (directory to run in)
-- @treturn table `{code=integer, stdout=string, stderr=string, timed_out=boolean}`
function M.run(argv, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local words = {}
  for i, w in ipairs(argv) do words[i] = M.quote(w) end
  local cmd = ("%s timeout -k 5 %d %s >%s 2>%s"):format(env_prefix(opts.env), opts.timeout or 30,
    table.concat(words, " "), M.quote(dir .. "/out"), M.quote(dir .. "/err"))
  if opts.stdin then
    cmd = cmd .. " <" .. M.quote(M.write(dir .. "/in", opts.stdin))
  else
    cmd = cmd .. " </dev/null"
  end
  if opts.cwd then cmd = "cd " .. M.quote(opts.cwd) .. " && " .. cmd end
  local _, how, code = os.execute(cmd)
  if how == "signal" then code = 128 + code end
  local res = { code = code, stdout = read_all(dir .. "/out"), stderr = read_all(dir .. "/err") }
  res.timed_out = code == 124
  M.rmdir(dir)
  return res
end

--- Run Lua source text in a child lua5.4.
-- @tparam string code the script
-- @tparam[opt] table opts as for `run`, plus `args` (array of script arguments)
-- @treturn table as for `run`
function M.lua(code, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local script = M.write(dir .. "/child.lua", code)
  local argv = { "lua5.4", script }
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = a end
  local res = M.run(argv, opts)
  M.rmdir(dir)
  return res
end

--- Describe a result for assertion messages.
-- @tparam table res from `run`
-- @treturn string
function M.describe(res)
  return ("exit %s\n--- stdout\n%s\n--- stderr\n%s"):format(tostring(res.code), res.stdout, res.stderr)
end

return M
