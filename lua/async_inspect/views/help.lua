--- The dashboard's key help, for the live, remote and replay modes.
--
-- Pure: options in, lines out.
-- @module async_inspect.views.help

local util = require("async_inspect.views.util")

local M = {}

local COMMON = {
  { "Views", {
    { "1..6, tab, shift-tab", "Tasks, Detail, Timeline, Tree, Resources, Warnings" },
    { "?", "this help (up/down scroll it, any other key closes it)" },
    { "q", "quit the dashboard" },
    { "ctrl-l", "redraw the screen" },
  } },
  { "Lists (Tasks, Tree) and scrolling", {
    { "up/down, k/j", "move the selection / scroll" },
    { "pgup/pgdn, home/end", "move by a page / to the first or last row" },
    { "enter", "detail of the selected task" },
    { "esc", "back (from Detail), or clear the filter" },
  } },
  { "Tasks", {
    { "left/right, h/l", "sort by the previous / next column" },
    { "i", "invert the sort order" },
    { "/", "filter: type a Lua pattern or plain text, enter applies, esc cancels" },
  } },
  { "Timeline", {
    { "left/right, h/l", "scroll the time window back / forward" },
    { "+ / -", "zoom in / out" },
    { "0", "whole run (and follow the live end)" },
    { "up/down, k/j", "scroll the task rows" },
  } },
}

local LIVE = { "Live", {
  { "space", "pause / resume the updates" },
} }

local REPLAY = { "Replay", {
  { "space", "play / pause" },
  { ", / .", "step one event back / forward" },
  { "< / >", "one second back / forward" },
  { "g / G", "jump to the start / the end" },
  { "[ / ]", "play slower / faster" },
} }

--- The key groups shown for a mode.
-- @tparam[opt] string mode "live" (default), "remote" or "replay"
-- @treturn {table,...} groups `{title, {{keys, description}, ...}}`
function M.keys(mode)
  util.check(mode, "string", 1, "keys", true)
  local groups = {}
  for i, g in ipairs(COMMON) do groups[i] = g end
  groups[#groups + 1] = mode == "replay" and REPLAY or LIVE
  return groups
end

--- Render the help.
-- @tparam[opt] table opts `mode` ("live", "remote", "replay"), `width` (80), `color`, `ascii`
-- @treturn {string,...} lines
-- @usage local lines = help.render({mode="replay", width=80})
function M.render(opts)
  util.check(opts, "table", 1, "render", true)
  opts = opts or {}
  local width = opts.width or 80
  local lines = { util.paint("async_inspect dashboard: keys (" .. (opts.mode or "live") .. ")",
    "bold", opts.color) }
  for _, g in ipairs(M.keys(opts.mode)) do
    lines[#lines + 1] = ""
    lines[#lines + 1] = util.paint(g[1], "bold", opts.color)
    for _, k in ipairs(g[2]) do
      lines[#lines + 1] = util.truncate("  " .. util.pad(k[1], 22) .. " " .. k[2], width, opts)
    end
  end
  return lines
end

return setmetatable(M, { __call = function(_, ...) return M.render(...) end })
