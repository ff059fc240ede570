--- The terminal dashboard: `start` runs it on the program's luv loop.
--
-- It refreshes four times a second by default, redraws only the lines that changed (and
-- the whole frame every two seconds, on ctrl-l and on resize), and reads keys in raw mode.
-- The program's tasks are not disturbed: the dashboard creates no coroutine and does its
-- work in luv callbacks on the main thread; when the terminal does not keep up, frames are
-- skipped rather than queued.
-- @module async_inspect.tui

local uv = require("luv")
local term_mod = require("async_inspect.tui.term")
local input = require("async_inspect.tui.input")
local app_mod = require("async_inspect.tui.app")
local util = require("async_inspect.views.util")
local feed = require("async_inspect.feed")
local handles = require("async_inspect.handles")

local M = {}

-- the terminal hooks debug.traceback while it runs: our own handler is the original one
local traceback = debug.traceback

local function utf8_locale()
  for _, var in ipairs({ "LC_ALL", "LC_CTYPE", "LANG" }) do
    local v = os.getenv(var)
    if v and v ~= "" then return v:lower():gsub("-", ""):find("utf8", 1, true) ~= nil end
  end
  return false
end

--- A source for the live program: `ai.snapshot()` each refresh, with the events read
-- incrementally through `ai.iter_events` (at most `max_events` kept) when a view needs
-- them, and the traceback and locals of the task shown in Detail (from `ai.where` and
-- `ai.locals`, formatted by `async_inspect.where`, when the inspector has them).
-- @tparam[opt] table ai the inspector (default `require "async_inspect"`)
-- @tparam[opt] table opts `max_events` (default 20000)
-- @treturn table source `{mode="live", snapshot=function(need), details=function(id)}`
-- @usage tui.start{source = tui.live_source(ai)}
function M.live_source(ai, opts)
  if ai ~= nil and type(ai) ~= "table" then
    error("bad argument #1 to 'live_source' (table expected, got " .. type(ai) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'live_source' (table expected, got " .. type(opts) .. ")", 2)
  end
  ai = ai or require("async_inspect")
  local max_events = (opts and opts.max_events) or 20000
  local ring, first, last, next_seq = {}, 1, 0, nil

  local function pull()
    for seq, t, task, kind, loc, other, detail in ai.iter_events(next_seq) do
      last = last + 1
      ring[last] = { seq = seq, t = t, task = task, kind = kind, loc = loc, other = other,
        detail = detail }
      if last - first + 1 > max_events then
        ring[first] = nil
        first = first + 1
      end
      next_seq = seq + 1
    end
  end

  local function details(id)
    local out = {}
    if type(ai.where) == "function" then
      local ok, w = pcall(ai.where, id)
      if ok and type(w) == "table" then w = w.traceback or (w[1] and w[1].traceback) end
      if ok and type(w) == "string" then out.traceback_now = w end
    end
    if type(ai.locals) == "function" then
      local ok, l = pcall(ai.locals, id)
      if ok and type(l) == "table" and type(l[1]) == "table" then
        -- frames: turned into lines by async_inspect.where
        local wok, where = pcall(require, "async_inspect.where")
        if wok then ok, l = pcall(where.format_locals, l) else ok = false end
      end
      if ok and (type(l) == "string" or (type(l) == "table" and #l > 0)) then out.locals = l end
    end
    return out
  end

  return {
    mode = "live",
    snapshot = function(need)
      local snap = ai.snapshot()
      if need and need.events then
        if not next_seq then
          -- start near the end of a large ring rather than reading all of it
          local _, last_seq = feed.bounds(ai)
          next_seq = math.max(1, last_seq - max_events + 1)
        end
        pull()
        snap.events = table.move(ring, first, last, 1, {})
      end
      return snap
    end,
    details = details,
  }
end

-- With autowrap off the cursor stays on the last column after a full-width line, where
-- an erase-to-end-of-line would wipe that column: erase only after shorter lines.
local function render(frame, prev, full, w)
  local out = {}
  for i, line in ipairs(frame) do
    if full or prev[i] ~= line then
      local erase = util.width(line) < w and "\27[K" or ""
      out[#out + 1] = "\27[" .. i .. ";1H" .. line .. "\27[0m" .. erase
    end
  end
  return table.concat(out)
end

--- Start the dashboard.
-- @tparam[opt] table opts `source` (function or table, see `async_inspect.tui.app`;
-- default: the live program through `live_source`), `mode`, `interval` (ms between
-- refreshes, default 250), `ascii` (default: when the locale is not UTF-8), `color`
-- (default: unless NO_COLOR is set or TERM is dumb), `keep_alive` (the dashboard keeps the
-- luv loop running until quit, default true), `watchdog` (default true), `on_quit`
-- (called after the user quits with q), `fd_in`/`fd_out` (0 and 1), `gantt`
-- @treturn table handle with `stop()`, `redraw()` and the fields `app`, `term`
-- @usage local dash = ai.tui.start(); ... ; dash:stop()
function M.start(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'start' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  local interval = opts.interval or 250
  if type(interval) ~= "number" or interval <= 0 then
    error("bad argument #1 to 'start' (interval must be a positive number)", 2)
  end
  local topened, term = pcall(term_mod.open, opts)
  if not topened then error((tostring(term):gsub("^[^:]*:%d+: ", "")), 2) end
  local ascii = opts.ascii
  if ascii == nil then ascii = not utf8_locale() end
  local color = opts.color
  if color == nil then color = os.getenv("NO_COLOR") == nil and os.getenv("TERM") ~= "dumb" end
  local app = app_mod.new({
    source = opts.source or M.live_source(), mode = opts.mode, ascii = ascii, color = color,
    gantt = opts.gantt,
  })
  local handle = { app = app, term = term, stopped = false }
  local prev, since_full = {}, 0
  local w, h = 80, 24
  local timer, esc_timer = uv.new_timer(), uv.new_timer()
  local decoder = input.decoder()

  local function draw(full)
    local frame = app:frame(w, h)
    if term:write(render(frame, prev, full, w)) then
      prev = frame
    else
      prev = {}
    end
  end

  local function stop()
    if handle.stopped then return end
    handle.stopped = true
    handles.release(timer)
    handles.release(esc_timer)
    term:restore()
  end

  local function after_keys()
    if app.interrupt then
      -- ctrl-c in raw mode reaches us as a key: act as the terminal would have
      stop()
      uv.kill(uv.os_getpid(), "sigint")
    elseif app.quit then
      stop()
      if opts.on_quit then opts.on_quit() end
    else
      local full = app.redraw
      app.redraw = false
      draw(full)
    end
  end

  -- every callback: an error stops the dashboard and gives the terminal back first
  local function safe(fn)
    return function(...)
      local ok, err = xpcall(fn, traceback, ...)
      if not ok then
        stop()
        io.stderr:write("async_inspect.tui: the dashboard stopped on an error: ",
          tostring(err), "\n")
      end
    end
  end

  local function on_input(data)
    for _, k in ipairs(decoder.feed(data)) do app:key(k) end
    if decoder.pending ~= "" then
      -- an incomplete escape sequence: take it as it is if nothing follows soon
      esc_timer:start(40, 0, safe(function()
        for _, k in ipairs(decoder.flush()) do app:key(k) end
        after_keys()
      end))
    end
    after_keys()
  end

  local function on_resize(cw, ch)
    w, h = cw, ch
    prev = {}
    term:write("\27[2J")
    draw(true)
  end

  local ok, err = pcall(term.start, term, safe(on_input), safe(on_resize))
  if not ok then
    -- half set up (a terminal that refuses raw mode): give it back before failing
    term:restore()
    handles.release(timer)
    handles.release(esc_timer)
    error("async_inspect.tui: cannot start the dashboard: " .. tostring(err), 2)
  end
  w, h = term:size()
  app:refresh()
  draw(true)
  timer:start(interval, interval, safe(function()
    if term:resume() then
      -- the program survived an error that made us give the terminal back
      since_full = 2000
      prev = {}
    end
    app:tick(interval)
    app:refresh()
    since_full = since_full + interval
    local full = since_full >= 2000
    if full then since_full = 0 end
    draw(full)
  end))
  if opts.keep_alive == false then
    timer:unref()
    esc_timer:unref()
  end

  handle.stop = function() stop() end
  handle.redraw = function() draw(true) end
  -- the Lua state closing (end of the program, error in the main chunk) restores too;
  -- created last so it is finalised before the luv handles
  handle.guard = setmetatable({}, { __gc = function() term:restore() end })
  return handle
end

return M
