-- The text views as pure functions: fixture snapshots in, lines out.
local fx = require("fixtures")
local util = require("async_inspect.views.util")
local tasks = require("async_inspect.views.tasks")
local detail = require("async_inspect.views.detail")
local tree = require("async_inspect.views.tree")
local resources = require("async_inspect.views.resources")
local warnings = require("async_inspect.views.warnings")
local help = require("async_inspect.views.help")

local MS = 1000000

local function all_fit(lines, w)
  for i, l in ipairs(lines) do
    if util.width(l) > w then return false, i, l end
  end
  return true
end

local function find_line(lines, pattern)
  for i, l in ipairs(lines) do
    if util.strip(l):find(pattern) then return i, l end
  end
  return nil
end

local function ids_of(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.id or r.task.id end
  return out
end

describe("views.util", function()
  it("formats durations in at most 7 columns", function()
    assert.equal("-", util.duration(nil))
    assert.equal("850ns", util.duration(850))
    assert.equal("1.50µs", util.duration(1500))
    assert.equal("1.50us", util.duration(1500, true))
    assert.equal("12.3ms", util.duration(12345678))
    assert.equal("123ms", util.duration(123456789))
    assert.equal("1.20s", util.duration(1200000000))
    assert.equal("2m03s", util.duration(123 * 1e9))
    assert.equal("1h02m", util.duration(3720 * 1e9))
    for _, ns in ipairs({ 1, 999, 9999, 99999, 999999, 9999999, 1e9, 59e9, 3599e9, 86400e9 }) do
      assert.is_true(util.width(util.duration(ns)) <= 7, util.duration(ns))
    end
  end)

  it("sanitizes control characters and invalid UTF-8", function()
    assert.equal("a?[31mb c", util.sanitize("a\27[31mb\tc"))
    assert.equal("x?y", util.sanitize("x\255y"))
    assert.equal("é名", util.sanitize("é名"))
    assert.equal("??", util.sanitize("\194\155"))  -- C1 CSI is not printable
    assert.equal("42", util.sanitize(42))
    assert.equal("", util.sanitize(nil))
  end)

  it("measures display width with wide characters and colour codes", function()
    assert.equal(5, util.width("hello"))
    assert.equal(4, util.width("名前"))
    assert.equal(2, util.width("\27[31mab\27[39m"))
  end)

  it("truncates from the right or from the left with a mark", function()
    assert.equal("hello w…", util.truncate("hello world", 8))
    assert.equal("hello w~", util.truncate("hello world", 8, { ascii = true }))
    assert.equal("…file.lua:42", util.truncate("/long/path/file.lua:42", 12, { left = true }))
    assert.equal("名…", util.truncate("名前テスト", 4))
    assert.equal("short", util.truncate("short", 10))
    assert.equal("  12", util.pad("12", 4, "right"))
  end)

  it("cuts coloured lines without breaking the colour codes", function()
    local s = "\27[31mabcdef\27[39m"
    local cut = util.fit(s, 3)
    assert.equal("abc", util.strip(cut))
    assert.truthy(cut:find("\27[39m", 1, true))
  end)

  it("lays out columns, dropping the least important first", function()
    local specs = { { w = 5 }, { min = 4, weight = 1 }, { w = 6, drop = 2 }, { w = 5, drop = 1 } }
    local w = util.layout(specs, 40)
    assert.same({ 5, 21, 6, 5 }, w)
    local narrow = util.layout(specs, 15)
    assert.equal(0, narrow[3])
    assert.equal(0, narrow[4])
    assert.equal(15, narrow[1] + narrow[2] + 1)
  end)

  it("wraps text at spaces and cuts words longer than a line", function()
    assert.same({ "aaa bbb", "ccc" }, util.wrap("aaa bbb ccc", 7))
    assert.same({ "abcde", "fgh" }, util.wrap("abcdefgh", 5))
    assert.same({ "aa bb", "  cc" }, util.wrap("aa bb cc", 5, "  "))
    assert.same({ "  aa", "  bb" }, util.wrap("  aa bb", 5, "  "))
  end)

  it("draws bars and sparklines", function()
    assert.equal("█████", util.bar(1, 5))
    assert.equal("##", util.bar(0.5, 4, true))
    assert.equal("▁█", util.sparkline({ 0, 10 }))
    assert.equal("_#", util.sparkline({ 0, 10 }, true))
  end)

  it("computes nearest-rank percentiles", function()
    local s = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }
    assert.equal(5, util.percentile(s, 50))
    assert.equal(9, util.percentile(s, 90))
    assert.equal(10, util.percentile(s, 100))
    assert.is_nil(util.percentile({}, 50))
  end)

  it("computes total, busy and idle from a record", function()
    local total, busy, idle = util.task_times({ created = 10, busy = 3 }, 20)
    assert.same({ 10, 3, 7 }, { total, busy, idle })
    total, busy, idle = util.task_times({ created = 10, ended = 15, busy = 5 }, 99)
    assert.same({ 5, 5, 0 }, { total, busy, idle })
  end)
end)

describe("views.tasks", function()
  local snap = fx.snapshot()

  it("sorts by any column, ties by id, and inverts", function()
    assert.same({ 1, 2, 3, 4, 5 }, ids_of(tasks.rows(snap)))
    assert.same({ 5, 4, 3, 2, 1 }, ids_of(tasks.rows(snap, { invert = true })))
    -- inverting reverses the whole order, ties included
    assert.same({ 2, 3, 1, 5, 4 }, ids_of(tasks.rows(snap, { sort = "busy", invert = true })))
    assert.same({ 3, 5, 1, 2, 4 }, ids_of(tasks.rows(snap, { sort = "name" })))
    -- live states first: suspended, then failed, then completed
    assert.same({ 1, 2, 4, 3, 5 }, ids_of(tasks.rows(snap, { sort = "state" })))
    assert.same({ 1, 3, 4, 5, 2 }, ids_of(tasks.rows(snap, { sort = "resumes" })))
    assert.same({ 1, 2, 4, 3, 5 }, ids_of(tasks.rows(snap, { sort = "total", invert = true })))
    assert.same({ 1, 2, 4, 3, 5 }, ids_of(tasks.rows(snap, { sort = "idle", invert = true })))
    assert.same({ 3, 4, 1, 5, 2 }, ids_of(tasks.rows(snap, { sort = "location" })))
    assert.same({ 3, 4, 5, 1, 2 }, ids_of(tasks.rows(snap, { sort = "await" })))
    assert.has_error(function() tasks.rows(snap, { sort = "nope" }) end)
  end)

  it("filters by plain substring, case-insensitively", function()
    assert.same({ 2, 4 }, ids_of(tasks.rows(snap, { filter = "WORKER" })))
    assert.same({ 2 }, ids_of(tasks.rows(snap, { filter = "lock:db" })))
    assert.same({ 4 }, ids_of(tasks.rows(snap, { filter = "failed" })))
  end)

  it("filters by Lua pattern, and takes a broken pattern as text", function()
    assert.same({ 2, 4 }, ids_of(tasks.rows(snap, { filter = "^worker %d$" })))
    assert.same({ 1, 2, 3, 4, 5 }, ids_of(tasks.rows(snap, { filter = "app%.lua" })))
    assert.same({}, ids_of(tasks.rows(snap, { filter = "[" })))
    local odd = { t = 1, stats = {}, tasks = { { id = 1, name = "a[b", state = "pending" } } }
    assert.same({ 1 }, ids_of(tasks.rows(odd, { filter = "[" })))
  end)

  it("renders a summary, a header with the sort mark and one row per task", function()
    local lines, info = tasks.render(snap, { width = 80, sort = "busy", invert = true })
    assert.equal(2 + 5, #lines)
    assert.truthy(lines[1]:find("5 tasks, 2 suspended, 2 completed, 1 failed", 1, true))
    assert.truthy(lines[2]:find("Busy▼", 1, true))
    assert.truthy(lines[3]:find("worker 1", 1, true))
    assert.truthy(lines[3]:find("14.0ms", 1, true))
    assert.same({ 2, 3, 1, 5, 4 }, info.ids)
    assert.is_nil(info.index)
    assert.is_true((all_fit(lines, 80)))
  end)

  it("shows location, await label and wait", function()
    local lines = tasks.render(snap, { width = 120 })
    local _, row = find_line(lines, "worker 1")
    assert.truthy(row:find("worker.lua:40", 1, true))
    assert.truthy(row:find("write [lock:db]", 1, true))
    local _, done = find_line(lines, "fetcher")
    assert.truthy(done:find("app.lua:21", 1, true))
    assert.truthy(done:find("DONE", 1, true))
  end)

  it("marks the selected task and keeps it in view when scrolling", function()
    local many = fx.many(100)
    local lines, info = tasks.render(many, { width = 80, height = 12, selected = 50 })
    assert.equal(12, #lines)
    assert.equal(50, info.selected)
    local i = find_line(lines, "^> ")
    assert.truthy(lines[i]:find("task-050", 1, true))
    assert.equal(40, info.offset)
    -- the selection moves to where the previous one was when it disappears
    local _, info2 = tasks.render(many, { height = 12, selected = 1000, cursor = 7 })
    assert.equal(7, info2.selected)
  end)

  it("says when nothing matches the filter", function()
    local lines, info = tasks.render(snap, { filter = "zzz", height = 5 })
    assert.equal(0, info.count)
    assert.truthy(find_line(lines, "no task matches 'zzz'"))
    assert.truthy(lines[1]:find("^filter 'zzz': 0 shown | 5 tasks"))
  end)

  it("fits 80 columns, and narrower widths by dropping columns", function()
    for _, w in ipairs({ 80, 60, 40 }) do
      local lines = tasks.render(fx.many(30), { width = w })
      local ok, i, l = all_fit(lines, w)
      assert.is_true(ok, ("width %d, line %s: %s"):format(w, tostring(i), tostring(l)))
    end
    local narrow = tasks.render(snap, { width = 50 })
    assert.falsy(narrow[2]:find("Await", 1, true))
  end)

  it("checks its arguments", function()
    assert.has_error(function() tasks.render(nil) end,
      "bad argument #1 to 'render' (snapshot table expected, got no value)")
    assert.has_error(function() tasks.render({}) end,
      "bad argument #1 to 'render' (snapshot needs 't' and 'tasks')")
    assert.has_error(function() tasks.render(snap, 5) end,
      "bad argument #2 to 'render' (table expected, got number)")
    assert.has_error(function() tasks.matches(snap.tasks[1], 3) end,
      "bad argument #2 to 'matches' (string expected, got number)")
  end)

  it("is callable as a function", function()
    local lines = tasks(snap, { width = 80 })
    assert.equal(7, #lines)
  end)
end)

describe("views.detail", function()
  local snap = fx.snapshot()

  it("computes resume times from resume to yield or end", function()
    assert.same({ 2 * MS, 4 * MS, 8 * MS }, detail.resume_times(snap.events, 2))
    assert.same({ 5 * MS }, detail.resume_times(snap.events, 3))
    assert.same({}, detail.resume_times(nil, 2))
  end)

  it("groups await points with counts and suspended time", function()
    local points = detail.await_points(snap.events, 2, snap.t)
    assert.equal(2, #points)
    assert.same({ loc = "worker.lua:40", label = "write", count = 1, total = 42 * MS,
      max = 42 * MS, current = true }, points[1])
    assert.same({ loc = "worker.lua:33", label = "read", count = 2, total = 34 * MS,
      max = 28 * MS, current = false }, points[2])
  end)

  it("renders figures, where, histogram, await points, resources, warnings, children", function()
    local lines = detail.render(snap, { id = 2, width = 80 })
    assert.truthy(lines[1]:find("Task #2 worker 1", 1, true))
    assert.truthy(lines[1]:find("SUSP", 1, true))
    assert.truthy(find_line(lines, "parent #1 main loop"))
    assert.truthy(find_line(lines, "created 0%.002s at app%.lua:20"))
    assert.truthy(find_line(lines, "busy 14%.0ms"))
    assert.truthy(find_line(lines, "polls 3"))
    assert.truthy(find_line(lines, "suspended at worker%.lua:40 in flush"))
    assert.truthy(find_line(lines, "await write   waits for lock:db   for 42%.0ms"))
    assert.truthy(find_line(lines, "Resume times %(3%)"))
    assert.truthy(find_line(lines, "p50 4%.00ms"))
    assert.truthy(find_line(lines, "trend "))
    assert.truthy(find_line(lines, "worker%.lua:33  %[read%]  2x  total 34%.0ms  max 28%.0ms"))
    assert.truthy(find_line(lines, "%(now%)"))
    assert.truthy(find_line(lines, "waits for mutex db .*DEADLOCK"))
    assert.truthy(find_line(lines, "%[warn%] long_poll"))
    assert.truthy(find_line(lines, "Children %(0%)"))
    assert.is_true((all_fit(lines, 80)))
  end)

  it("lists the children of a task", function()
    local lines = detail.render(snap, { id = 1 })
    local i = find_line(lines, "Children %(3%)")
    assert.truthy(i)
    assert.truthy(lines[i + 1]:find("#2 worker 1", 1, true))
    assert.truthy(lines[i + 3]:find("#4 worker 2", 1, true))
    assert.truthy(find_line(lines, "holds mutex db"))
  end)

  it("shows the error and traceback of a failed task", function()
    local lines = detail.render(snap, { id = 4 })
    assert.truthy(find_line(lines, "^Error$"))
    assert.truthy(find_line(lines, "worker%.lua:50: boom"))
    assert.truthy(find_line(lines, "in function 'work'"))
  end)

  it("shows the traceback of the suspended coroutine and its locals when given", function()
    local s = fx.snapshot()
    s.tasks[2].traceback_now = "stack traceback:\n\tworker.lua:40: in function 'flush'"
    s.tasks[2].locals = { "level 1 flush:", "  n = 3", "  buf = \"abc\"" }
    local lines = detail.render(s, { id = 2 })
    assert.truthy(find_line(lines, "traceback:"))
    assert.truthy(find_line(lines, "worker%.lua:40: in function 'flush'"))
    assert.truthy(find_line(lines, "^Locals$"))
    assert.truthy(find_line(lines, "n = 3"))
  end)

  it("copes without events and with an unknown task", function()
    local s = fx.snapshot()
    s.events = nil
    local lines = detail.render(s, { id = 2 })
    assert.truthy(find_line(lines, "no resume in the events"))
    assert.truthy(find_line(lines, "none in the events"))
    assert.truthy(detail.render(s, { id = 99 })[1]:find("not in this snapshot", 1, true))
    assert.truthy(detail.render(s, {})[1]:find("No task selected", 1, true))
  end)

  it("checks its arguments", function()
    assert.has_error(function() detail.render(snap) end,
      "bad argument #2 to 'render' (table expected, got no value)")
    assert.has_error(function() detail.await_points(snap.events, 1) end,
      "bad argument #3 to 'await_points' (number expected, got no value)")
  end)
end)

describe("views.tree", function()
  local snap = fx.snapshot()

  it("draws the parent/child hierarchy", function()
    local rows = tree.rows(snap)
    assert.same({ 1, 2, 3, 4, 5 }, ids_of(rows))
    assert.same({ "", "├─ ", "├─ ", "└─ ", "" }, {
      rows[1].prefix, rows[2].prefix, rows[3].prefix, rows[4].prefix, rows[5].prefix })
    local lines = tree.render(snap, { width = 80 })
    assert.truthy(lines[1]:find("SUSP #1 main loop", 1, true))
    assert.truthy(lines[2]:find("├─ SUSP #2 worker 1", 1, true))
    assert.truthy(lines[2]:find("@ write", 1, true))
    assert.truthy(lines[4]:find("└─ FAIL #4 worker 2", 1, true))
    assert.truthy(lines[4]:find("! worker.lua:50: boom", 1, true))
  end)

  it("nests deeper levels with continuation lines", function()
    local many = fx.many(7)
    local rows = tree.rows(many, { ascii = true })
    -- 1 -> 2, 3; 2 -> 4, 5; 3 -> 6, 7
    assert.same({ 1, 2, 4, 5, 3, 6, 7 }, ids_of(rows))
    assert.equal("|  |- ", rows[3].prefix)
    assert.equal("|  `- ", rows[4].prefix)
    assert.equal("`- ", rows[5].prefix)
    assert.equal("   `- ", rows[7].prefix)
  end)

  it("filters and keeps the ancestors of matches", function()
    assert.same({ 1, 2 }, ids_of(tree.rows(snap, { filter = "worker 1" })))
    assert.same({ 5 }, ids_of(tree.rows(snap, { filter = "config" })))
  end)

  it("treats evicted parents and cycles without losing tasks", function()
    local s = { t = 10, stats = {}, tasks = {
      { id = 1, name = "a", state = "suspended", parent = 2 },
      { id = 2, name = "b", state = "suspended", parent = 1 },
      { id = 3, name = "c", state = "completed", parent = 99 },
    } }
    local rows = tree.rows(s)
    table.sort(rows, function(x, y) return x.task.id < y.task.id end)
    assert.same({ 1, 2, 3 }, ids_of(rows))
  end)

  it("selects and scrolls like the task list", function()
    local lines, info = tree.render(fx.many(60), { height = 10, selected = 60 })
    assert.equal(10, #lines)
    assert.equal(60, info.selected)
    assert.truthy(find_line(lines, "^> .*#60 task%-060"))
  end)
end)

describe("views.resources", function()
  local snap = fx.snapshot()

  it("puts deadlocked resources first and highlights them", function()
    local rows = resources.rows(snap)
    assert.equal("db", rows[1].name)
    local lines = resources.render(snap, { width = 80 })
    assert.truthy(find_line(lines, "^Deadlocks %(1%)"))
    assert.truthy(find_line(lines, "#2 worker 1 waits for db at worker%.lua:40, held by #1 main loop"))
    local i = find_line(lines, "^DEADLOCK mutex db")
    assert.truthy(i)
    assert.truthy(lines[i]:find("acquired 12, contended 3 (25%)", 1, true))
    assert.truthy(lines[i + 1]:find("held by #1 main loop for 95.0ms at app.lua:28", 1, true))
    assert.truthy(lines[i + 2]:find("waiter  #2 worker 1 for 42.0ms at worker.lua:40", 1, true))
    local c = find_line(lines, "^channel jobs")
    -- long lines continue, indented, on the next line
    assert.truthy(lines[c]:find("capacity 8,", 1, true))
    assert.equal("       size 2", lines[c + 1])
    assert.truthy(find_line(lines, "^       app%.lua:28%) for 42%.0ms"))
    assert.truthy(find_line(lines, "held by nobody"))
    assert.is_true((all_fit(lines, 80)))
  end)

  it("colours deadlocks in red when colour is on", function()
    local lines = resources.render(snap, { color = true })
    assert.truthy(find_line(lines, "DEADLOCK"))
    local _, l = find_line(lines, "DEADLOCK mutex")
    assert.truthy(l:find("\27[31mDEADLOCK", 1, true))
  end)

  it("says when there is no resource", function()
    local s = { t = 1, stats = {}, tasks = {} }
    assert.same({ "(none: no resource in this snapshot)" }, resources.render(s))
    s.resources = {}
    assert.same({ "(none)" }, resources.render(s))
  end)
end)

describe("views.warnings", function()
  local snap = fx.snapshot()

  it("lists errors first with message and recommendation", function()
    local lines = warnings.render(snap, { width = 80 })
    assert.equal("1 errors, 1 warnings", lines[1])
    local e = find_line(lines, "^ERROR unjoined_failure  #4 worker 2")
    local w = find_line(lines, "^WARN long_poll  #2 worker 1  at worker%.lua:40")
    assert.truthy(e and w and e < w)
    assert.truthy(find_line(lines, "^    → join the task or handle its error"))
    assert.truthy(find_line(lines, "^    worker 1 ran 8ms without yielding"))
  end)

  it("wraps long messages to the width", function()
    local s = fx.snapshot()
    s.warnings[1].message = ("word "):rep(40)
    local lines = warnings.render(s, { width = 40 })
    assert.is_true((all_fit(lines, 40)))
    local count = 0
    for _, l in ipairs(lines) do if l:find("^    word") then count = count + 1 end end
    assert.is_true(count >= 5)
  end)

  it("counts by severity and says when there is none", function()
    assert.same({ 1, 1 }, { warnings.counts(snap) })
    assert.same({ "(none: no warning in this snapshot)" },
      warnings.render({ t = 1, stats = {}, tasks = {} }))
  end)
end)

describe("views.help", function()
  it("lists the keys, with the replay keys in replay mode", function()
    local live = help.render({ mode = "live" })
    assert.truthy(find_line(live, "pause / resume"))
    assert.falsy(find_line(live, "step one event"))
    local replay = help.render({ mode = "replay", width = 60 })
    assert.truthy(find_line(replay, "step one event back / forward"))
    assert.is_true((all_fit(replay, 60)))
    assert.has_error(function() help.render(3) end,
      "bad argument #1 to 'render' (table expected, got number)")
  end)
end)

describe("every view in 80x24", function()
  local app_mod = require("async_inspect.tui.app")
  for _, case in ipairs({ { "fixture", fx.snapshot }, { "200 tasks", function() return fx.many(200) end } }) do
    for _, ascii in ipairs({ false, true }) do
      it(("fits with %s%s"):format(case[1], ascii and " in ASCII" or ""), function()
        local snap = case[2]()
        local app = app_mod.new({ source = function() return snap end, ascii = ascii,
          color = true })
        app:refresh()
        for _, key in ipairs({ "1", "enter", "3", "4", "5", "6", "?" }) do
          app:key(key)
          local frame = app:frame(80, 24)
          assert.equal(24, #frame)
          local ok, i, l = all_fit(frame, 80)
          assert.is_true(ok, ("after %s, line %s: %s"):format(key, tostring(i), tostring(l)))
          if ascii then
            for _, line in ipairs(frame) do
              assert.is_nil(util.strip(line):find("[\128-\255]"), line)
            end
          end
        end
      end)
    end
  end
end)
