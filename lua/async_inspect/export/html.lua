--- A self-contained HTML report: summary, stuck and failed tasks, a Gantt
-- timeline (inline SVG), busy and wait flamegraphs (inline SVG), and a
-- sortable task table.
--
-- One file, no network: no external script, style, font or image, and a
-- Content-Security-Policy that forbids fetching anything. Everything is
-- static HTML/SVG readable without JavaScript; a small inline script only
-- adds column sorting to the tables and marks the page with
-- `data-selfcheck="ok"` once it has run (tests read that back).
--
-- The events are read once, feeding the timeline rasteriser and both
-- flamegraph aggregators together; memory is bounded by the number of tasks
-- shown, not by the number of events.
-- @module async_inspect.export.html

local util = require("async_inspect.export.util")
local folded = require("async_inspect.export.folded")
local svg_flame = require("async_inspect.export.svg_flame")
local gantt = require("async_inspect.views.gantt")

local M = {}

local esc = util.xml_escape
local fmt = string.format
local human = util.human_ns
local ns = util.ns

local CSS = [[
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:90px;background:#fafafa}
.card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
.card.bad b{color:#c62828}.card.warn b{color:#b26a00}
table{border-collapse:collapse;font-size:13px;margin:4px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0;white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer}
th[aria-sort=ascending]::after{content:" \25B2"}th[aria-sort=descending]::after{content:" \25BC"}
.st-failed,.st-cancelled,.st-dropped{color:#c62828}.st-suspended{color:#b26a00}
.st-pending{color:#1565c0}.st-running{color:#2e7d32}
pre{background:#f7f7f7;border:1px solid #e5e5e5;padding:6px;overflow:auto;max-width:100%;margin:4px 0}
.scroll{overflow-x:auto}.note{color:#666;font-size:12px}
svg{max-width:none}
]]

local SCRIPT = [[
(function () {
  'use strict';
  var root = document.documentElement;
  window.addEventListener('error', function (e) {
    root.setAttribute('data-selfcheck', 'error: ' + e.message);
  });
  function key(td, numeric) {
    var v = td.getAttribute('data-v');
    if (v === null) v = td.textContent;
    if (!numeric) return v.toLowerCase();
    return v === '' ? -Infinity : Number(v);
  }
  function sortTable(table, col, numeric, desc) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col], numeric), y = key(b.cells[col], numeric);
      var r = x < y ? -1 : x > y ? 1 : 0;
      return desc ? -r : r;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    var ths = table.tHead.rows[0].cells;
    for (var i = 0; i < ths.length; i++) ths[i].removeAttribute('aria-sort');
    ths[col].setAttribute('aria-sort', desc ? 'descending' : 'ascending');
  }
  var tables = document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables, function (table) {
    var ths = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(ths, function (th, i) {
      th.tabIndex = 0;
      th.title = 'sort';
      var go = function () {
        sortTable(table, i, th.getAttribute('data-type') === 'num',
          th.getAttribute('aria-sort') === 'ascending');
      };
      th.addEventListener('click', go);
      th.addEventListener('keydown', function (e) { if (e.key === 'Enter') go(); });
    });
  });
  // Self-check: sorting the task table by id both ways must order it.
  var t = document.getElementById('task-table');
  var ids = function () {
    return Array.prototype.map.call(t.tBodies[0].rows, function (r) {
      return Number(r.cells[0].getAttribute('data-v'));
    });
  };
  sortTable(t, 0, true, true);
  var d = ids();
  sortTable(t, 0, true, false);
  var a = ids();
  for (var i = 1; i < a.length; i++) {
    if (a[i - 1] > a[i] || d[i - 1] < d[i]) throw new Error('table sort failed');
  }
  if (root.getAttribute('data-selfcheck') === null) root.setAttribute('data-selfcheck', 'ok');
  document.getElementById('js-note').textContent = 'Click a column header to sort.';
}());
]]

local COLORS = { [gantt.FINISHED] = "#dcdcdc", [gantt.PENDING] = "#9ecae1",
  [gantt.ACTIVE] = "#6baed6", [gantt.SUSPENDED] = "#f2c84b", [gantt.RUNNING] = "#2e9e44" }

local STUCK = { suspended = true, pending = true }

local function num_td(v, text)
  if v == nil then return '<td class="num" data-v=""></td>' end
  return fmt('<td class="num" data-v="%s">%s</td>', esc(v), esc(text or v))
end

local function td(v)
  return "<td>" .. (v == nil and "" or esc(v)) .. "</td>"
end

local function card(label, value, class)
  return fmt('<div class="card%s"><b>%s</b><span>%s</span></div>',
    class and (" " .. class) or "", esc(value), esc(label))
end

local function summary(put, source, tasks)
  local s = source.stats or {}
  local busy = 0
  for _, t in ipairs(tasks) do busy = busy + (t.busy or 0) end
  put('<section id="summary"><h2>Summary</h2><div class="cards">')
  local items = {
    { "tasks", s.tasks or #tasks }, { "active", s.active }, { "running", s.running },
    { "suspended", s.suspended, "warn" }, { "pending", s.pending },
    { "completed", s.completed }, { "failed", s.failed, "bad" },
    { "cancelled", s.cancelled }, { "dropped", s.dropped, "bad" },
    { "events", s.events }, { "events dropped", s.events_dropped, "warn" },
    { "evicted records", s.evicted },
  }
  for _, it in ipairs(items) do
    if it[2] ~= nil then
      put(card(it[1], it[2], (it[3] and it[2] ~= 0) and it[3] or nil))
    end
  end
  put(card("uptime", human(s.uptime or source.t or 0)))
  put(card("total busy", human(busy)))
  put("</div></section>\n")
end

local function stuck_section(put, source, tasks)
  local now = ns(source.t) or 0
  local stuck, failed = {}, {}
  for _, t in ipairs(tasks) do
    if STUCK[t.state] then stuck[#stuck + 1] = t end
    if t.state == "failed" then failed[#failed + 1] = t end
  end
  local function age(t) return now - (ns(t.last_change) or ns(t.created) or now) end
  table.sort(stuck, function(a, b)
    if age(a) ~= age(b) then return age(a) > age(b) end
    return a.id < b.id
  end)
  put('<section id="stuck"><h2>Stuck tasks</h2>')
  if #stuck == 0 then
    put('<p class="note">No task is suspended or pending.</p>')
  else
    put('<p class="note">Tasks suspended or never started, longest waiting first.</p>')
    put('<div class="scroll"><table id="stuck-table" class="sortable"><thead><tr>'
      .. '<th data-type="num">id</th><th>name</th><th>state</th><th data-type="num">waiting for</th>'
      .. '<th>where</th><th>function</th><th>await</th><th>wait</th></tr></thead><tbody>\n')
    for _, t in ipairs(stuck) do
      put("<tr>" .. num_td(t.id) .. td(t.name)
        .. fmt('<td class="st-%s">%s</td>', esc(t.state), esc(t.state))
        .. num_td(age(t), human(age(t))) .. td(t.where) .. td(t.where_fn)
        .. td(t.await) .. td(t.wait) .. "</tr>\n")
    end
    put("</tbody></table></div>")
  end
  put('<h2 id="failed">Failed tasks</h2>')
  if #failed == 0 then
    put('<p class="note">No task failed.</p>')
  else
    for _, t in ipairs(failed) do
      put(fmt('<div class="failed-task"><b>#%d %s</b> <span class="note">at %s</span>'
        .. '<pre class="error">%s</pre>', t.id, esc(t.name or ""),
        esc(human(ns(t.ended) or 0)), esc(t.error or "(no message)")))
      if t.traceback then
        put("<details><summary>traceback</summary><pre>" .. esc(t.traceback) .. "</pre></details>")
      end
      put("</div>\n")
    end
  end
  put("</section>\n")
end

-- A point (diamond) or an abnormal end (red cross) centred on x.
local function mark_svg(what, x, y)
  if what == "point" then
    return fmt('<path d="M%.1f %d l4 5 -4 5 -4 -5z" fill="#b0179c"><title>point</title></path>', x, y + 4)
  end
  return fmt('<path d="M%.1f %d l8 8 M%.1f %d l-8 8" stroke="#c62828" stroke-width="2">'
    .. '<title>%s</title></path>', x - 4, y + 5, x + 4, y + 5, esc(what))
end

-- The timeline as SVG: one row per task, merged runs of equal cells.
local function timeline_svg(rows, from, to, cells, total)
  local label_w, cell_w, row_h, top = 230, 2, 18, 8
  local plot_w = cells * cell_w
  local width = label_w + plot_w + 20
  local height = top + #rows * row_h + 60
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(fmt('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
    .. 'font-family="Verdana, Arial, sans-serif" font-size="11" class="timeline">\n',
    width, height, width, height))
  for i, row in ipairs(rows) do
    local y = top + (i - 1) * row_h
    local task = row.task
    add(fmt('<g><title>#%d %s (%s)</title>', task.id, esc(task.name or ""), esc(task.state or "")))
    local name = tostring(task.name or "")
    if (utf8.len(name) or #name) > 30 then
      name = utf8.len(name) and name:sub(1, utf8.offset(name, 29) - 1) .. "…" or name:sub(1, 29)
    end
    add(fmt('<text x="4" y="%d">#%d %s</text>', y + 13, task.id, esc(name)))
    local c = row.cells
    local j = 1
    while j <= cells do
      local k = j
      while k < cells and c[k + 1] == c[j] do k = k + 1 end
      if COLORS[c[j]] then
        add(fmt('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>',
          label_w + (j - 1) * cell_w, y + 3, (k - j + 1) * cell_w, row_h - 6, COLORS[c[j]]))
      end
      j = k + 1
    end
    for cell = 1, cells do
      local what = row.marks[cell]
      if what then add(mark_svg(what, label_w + (cell - 1) * cell_w + cell_w / 2, y)) end
    end
    add("</g>\n")
  end
  -- Axis.
  local ay = top + #rows * row_h + 4
  add(fmt('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>', label_w, ay, label_w + plot_w, ay))
  local ticks, step = gantt.ticks(from, to, cells, 40)
  local div, unit, decimals = gantt.axis_unit(step)
  for _, tk in ipairs(ticks) do
    local x = label_w + (tk.cell - 1) * cell_w
    add(fmt('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/><text x="%d" y="%d" '
      .. 'text-anchor="middle">%s</text>', x, ay, x, ay + 5, x, ay + 17,
      esc(gantt.tick_label(tk.t, div, decimals))))
  end
  add(fmt('<text x="4" y="%d">time (%s)</text>', ay + 17, esc(unit)))
  -- Legend.
  local lx, ly = label_w, ay + 36
  for _, it in ipairs({ { gantt.RUNNING, "running" }, { gantt.SUSPENDED, "suspended" },
      { gantt.PENDING, "pending" }, { gantt.ACTIVE, "active (no event detail)" },
      { gantt.FINISHED, "finished" } }) do
    add(fmt('<rect x="%d" y="%d" width="12" height="10" fill="%s"/><text x="%d" y="%d">%s</text>',
      lx, ly - 9, COLORS[it[1]], lx + 16, ly, it[2]))
    lx = lx + 30 + #it[2] * 7
  end
  add(fmt('<path d="M%d %d l4 5 -4 5 -4 -5z" fill="#b0179c"/><text x="%d" y="%d">point</text>',
    lx + 4, ly - 10, lx + 12, ly))
  if total > #rows then
    add(fmt('<text x="%d" y="%d" fill="#666">(%d more tasks not shown)</text>', lx + 60, ly, total - #rows))
  end
  add("</svg>")
  return table.concat(out)
end

local TASK_COLS = {
  { "id", "num" }, { "name" }, { "state" }, { "kind" }, { "parent", "num" },
  { "created", "time" }, { "first_resume", "time" }, { "ended", "time" },
  { "resumes", "num" }, { "busy", "time" }, { "where" }, { "await" }, { "wait" },
}

local function task_table(put, tasks, limit)
  put('<section id="tasks"><h2>Tasks</h2><p class="note" id="js-note">'
    .. "Static table (JavaScript is off or has not run).</p>")
  put('<div class="scroll"><table id="task-table" class="sortable"><thead><tr>')
  for _, c in ipairs(TASK_COLS) do
    put(fmt('<th%s>%s</th>', c[2] and ' data-type="num"' or "", c[1]))
  end
  put("</tr></thead><tbody>\n")
  local n = math.min(#tasks, limit)
  for i = 1, n do
    local t = tasks[i]
    local cells = {}
    for j, c in ipairs(TASK_COLS) do
      local v = t[c[1]]
      if c[2] == "time" then
        cells[j] = num_td(v, v and human(v))
      elseif c[2] == "num" then
        cells[j] = num_td(v)
      elseif c[1] == "state" then
        cells[j] = fmt('<td class="st-%s">%s</td>', esc(v or ""), esc(v or ""))
      else
        cells[j] = td(v)
      end
    end
    put("<tr>" .. table.concat(cells) .. "</tr>\n")
  end
  put("</tbody></table></div>")
  if #tasks > n then
    put(fmt('<p class="note">%d more tasks not listed (limit %d).</p>', #tasks - n, limit))
  end
  put("</section>\n")
end

local function window(source, tasks)
  local to = ns(source.t)
  local from
  for _, t in ipairs(tasks) do
    local c = ns(t.created) or 0
    if not from or c < from then from = c end
    if not source.t then
      to = math.max(to or 0, ns(t.last_change) or 0, ns(t.ended) or 0)
    end
  end
  from = from or 0
  to = to or from
  if to <= from then to = from + 1 end
  return from, to
end

--- Write the report.
-- @tparam file f
-- @tparam table source export source
-- @tparam[opt] table opts `title`, `max_rows` (timeline rows, default 200),
--   `max_tasks` (task table rows, default 10000), `cells` (timeline
--   resolution, default 400)
-- @treturn table summary `{events=, tasks=, bytes=}`
function M.write(f, source, opts)
  opts = opts or {}
  local w = util.writer(f)
  local put = w.put
  local tasks = util.by_start(source.tasks or {})
  local title = opts.title or "async_inspect report"

  -- One pass over the events feeds the timeline and both flamegraphs.
  local from, to = window(source, tasks)
  local cells = opts.cells or 400
  local rows_src = {}
  for i = 1, math.min(#tasks, opts.max_rows or 200) do rows_src[i] = tasks[i] end
  local raster = gantt.raster(rows_src, from, to, cells)
  local busy = folded.aggregator(tasks, "busy")
  local wait = folded.aggregator(tasks, "wait")
  local rfeed, bfeed, wfeed = raster.feed, busy.feed, wait.feed
  local n, last = 0, 0
  for seq, t, id, kind, loc, other, detail in source.iter_events() do
    n = n + 1
    last = t
    rfeed(seq, t, id, kind, loc, other, detail)
    bfeed(seq, t, id, kind, loc, other, detail)
    wfeed(seq, t, id, kind, loc, other, detail)
  end
  local t_end = source.t or last
  raster.finish(t_end)
  busy.finish(t_end)
  wait.finish(t_end)

  put('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    .. '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
    .. 'style-src \'unsafe-inline\'; script-src \'unsafe-inline\'; img-src data:">'
    .. '<meta name="viewport" content="width=device-width, initial-scale=1">'
    .. "<title>" .. esc(title) .. "</title><style>" .. CSS .. "</style></head>\n<body>\n")
  put("<h1>" .. esc(title) .. "</h1>")
  put(fmt('<p class="sub">%d tasks, %d events, snapshot at %s since the start of tracking.</p>\n',
    #tasks, n, esc(human(ns(t_end) or 0))))
  summary(put, source, tasks)
  stuck_section(put, source, tasks)
  put('<section id="timeline"><h2>Timeline</h2><div class="scroll">')
  put(timeline_svg(raster.rows, from, to, cells, #tasks))
  put("</div></section>\n")
  put('<section id="flamegraph"><h2>Flame graphs</h2><div class="scroll">')
  put(svg_flame.render(busy.stacks(), { xml_decl = false, weight = "busy",
    title = "Busy time by await point", palette = "hot" }))
  put(svg_flame.render(wait.stacks(), { xml_decl = false, weight = "wait",
    title = "Wait time by await point", palette = "cold" }))
  put("</div></section>\n")
  task_table(put, tasks, opts.max_tasks or 10000)
  put("<script>" .. SCRIPT .. "</script>\n</body></html>\n")
  w.flush()
  return { events = n, tasks = #tasks, bytes = w.bytes }
end

return M
