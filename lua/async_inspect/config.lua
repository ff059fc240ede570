--- Settings: validation, presets and environment variables.
--
-- Settings are split between the C core (applied there, on the hot path) and
-- the Lua layer. Every setting documented here changes what is recorded;
-- docs/configuration.md says how.
-- @module async_inspect.config

local M = {}

-- setting -> { side, type, check, [to_c] }
local function int_range(lo, hi)
  return function(v) return math.type(v) == "integer" and v >= lo and v <= hi end,
      ("an integer from %d to %d"):format(lo, hi)
end

local function number_range(lo, hi)
  return function(v) return type(v) == "number" and v >= lo and v <= hi end,
      ("a number from %s to %s"):format(lo, hi)
end

local function boolean()
  return function(v) return type(v) == "boolean" end, "a boolean"
end

local function one_of(...)
  local set, names = {}, { ... }
  for _, n in ipairs(names) do set[n] = true end
  return function(v) return set[v] == true end, "one of " .. table.concat(names, ", ")
end

local SETTINGS = {
  ring_capacity = { side = "c", int_range(16, 1 << 31) },
  max_tasks = { side = "c", int_range(0, 4294967294) },
  locations = { side = "c", boolean() },
  tracebacks = { side = "c", boolean() },
  sample = { side = "c", number_range(0, 1) },
  seed = { side = "c", int_range(1, math.maxinteger) },
  long_poll_ms = { side = "c", to_c = function(v) return "long_poll_ns", math.floor(v * 1e6) end,
                   number_range(0, 1e9) },
  creation_traces = { side = "c", boolean() },
  unjoined_errors = { side = "lua", one_of("warn", "raise", "ignore") },
  deadlock = { side = "lua", one_of("report", "error", "ignore") },
  slow_callback_ms = { side = "lua", number_range(0, 1e9) },
  busy_wait_resumes = { side = "lua", int_range(1, math.maxinteger) },
  never_yield_ms = { side = "lua", number_range(0, 1e9) },
  churn_per_second = { side = "lua", number_range(0, 1e12) },
  stuck_ms = { side = "lua", number_range(0, 1e12) },
  busy_wait_gap_ms = { side = "lua", number_range(0, 1e9) },
}

local PRESETS = {
  default = {
    ring_capacity = 1 << 20, max_tasks = 100000, locations = true, tracebacks = true,
    sample = 1.0, long_poll_ms = 10, creation_traces = false,
  },
  -- low, bounded overhead for long-running services
  production = {
    ring_capacity = 1 << 16, max_tasks = 10000, locations = false, tracebacks = true,
    sample = 1.0, long_poll_ms = 50, creation_traces = false,
  },
}
M.PRESETS = PRESETS

--- Lua-side defaults.
-- @treturn table
function M.defaults()
  return {
    unjoined_errors = "warn", deadlock = "report",
    slow_callback_ms = 10, busy_wait_resumes = 1000, never_yield_ms = 1000,
    churn_per_second = 10000, stuck_ms = 10000, busy_wait_gap_ms = 1,
  }
end

local function bad(argn, msg)
  error(("bad argument #%d to 'configure' (%s)"):format(argn, msg), 4)
end

--- Validate `opts` and split it into the C core's part and the Lua part.
-- A `preset` expands first; explicit keys override it.
-- @tparam table opts
-- @tparam integer argn argument number for error messages
-- @treturn table c settings
-- @treturn table lua settings
function M.split(opts, argn)
  local c, lua = {}, {}
  local merged = {}
  if opts.preset ~= nil then
    local p = PRESETS[opts.preset]
    if p == nil then bad(argn - 1, ("unknown preset '%s'"):format(tostring(opts.preset))) end
    for k, v in pairs(p) do merged[k] = v end
  end
  for k, v in pairs(opts) do
    if k ~= "preset" then merged[k] = v end
  end
  for k, v in pairs(merged) do
    local spec = SETTINGS[k]
    if spec == nil then bad(argn - 1, ("unknown setting '%s'"):format(tostring(k))) end
    local check, what = spec[1], spec[2]
    if not check(v) then bad(argn - 1, ("setting '%s' must be %s"):format(k, what)) end
    if spec.side == "c" then
      if spec.to_c then
        local ck, cv = spec.to_c(v)
        c[ck] = cv
      else
        c[k] = v
      end
    else
      lua[k] = v
    end
  end
  return c, lua
end

local function env_number(getenv, name)
  local s = getenv(name)
  if s == nil or s == "" then return nil end
  return tonumber(s) or s -- a non-number is reported by the check below
end

local function env_integer(getenv, name)
  local v = env_number(getenv, name)
  if type(v) == "number" then return math.tointeger(v) or v end
  return v
end

local function env_bool(getenv, name)
  local s = getenv(name)
  if s == nil or s == "" then return nil end
  s = s:lower()
  if s == "0" or s == "off" or s == "false" or s == "no" then return false end
  return true
end

-- environment variable -> setting, and how to read it
local ENV_SETTINGS = {
  { "ASYNC_INSPECT_SAMPLE", "sample", env_number },
  { "ASYNC_INSPECT_MAX_TASKS", "max_tasks", env_integer },
  { "ASYNC_INSPECT_RING", "ring_capacity", env_integer },
  { "ASYNC_INSPECT_LOCATIONS", "locations", env_bool },
  { "ASYNC_INSPECT_LONG_POLL_MS", "long_poll_ms", env_number },
  { "ASYNC_INSPECT_CREATION_TRACES", "creation_traces", env_bool },
}

local function warn_env(name, value, why)
  io.stderr:write(("async_inspect: ignoring %s=%s (%s)\n"):format(name, tostring(value), why))
end

--- Settings from environment variables: ASYNC_INSPECT (0/off disables),
-- ASYNC_INSPECT_PRESET, ASYNC_INSPECT_SAMPLE, ASYNC_INSPECT_MAX_TASKS,
-- ASYNC_INSPECT_RING, ASYNC_INSPECT_LOCATIONS, ASYNC_INSPECT_LONG_POLL_MS,
-- ASYNC_INSPECT_CREATION_TRACES. A bad value is reported on stderr, naming
-- the variable, and ignored; the other variables still apply.
-- @tparam function getenv usually os.getenv
-- @treturn table `{enabled=bool, c=table, lua=table}`
-- @usage local env = config.from_env(os.getenv)
function M.from_env(getenv)
  local out = { enabled = env_bool(getenv, "ASYNC_INSPECT") ~= false, c = {}, lua = {} }
  local preset = getenv("ASYNC_INSPECT_PRESET")
  if preset and preset ~= "" then
    local ok, c, lua = pcall(M.split, { preset = preset }, 2)
    if ok then out.c, out.lua = c, lua
    else warn_env("ASYNC_INSPECT_PRESET", preset, ("unknown preset '%s'"):format(preset)) end
  end
  for _, e in ipairs(ENV_SETTINGS) do
    local name, key, read = e[1], e[2], e[3]
    local v = read(getenv, name)
    if v ~= nil then
      local spec = SETTINGS[key]
      if spec[1](v) then
        local ok, c, lua = pcall(M.split, { [key] = v }, 2)
        if ok then
          for k, x in pairs(c) do out.c[k] = x end
          for k, x in pairs(lua) do out.lua[k] = x end
        end
      else
        warn_env(name, getenv(name), ("setting '%s' must be %s"):format(key, spec[2]))
      end
    end
  end
  return out
end

return M
