-- Specs of the terminal concurrency view (views/gantt.lua), on fixture
-- snapshots that follow docs/internals.md.
local fixture = require("spec.support.fixture")
local gantt = require("async_inspect.views.gantt")

local function dlen(s) return utf8.len(s) end

-- The cells of the row of task `id` in a gantt output (between the bars).
local function row_cells(lines, id, bar)
  bar = bar or "│"
  for _, l in ipairs(lines) do
    if l:match("^#" .. id .. " ") then
      local a = l:find(bar, 1, true)
      local b = l:find(bar, a + #bar, true)
      local cells = {}
      for _, c in utf8.codes(l:sub(a + #bar, b - 1)) do cells[#cells + 1] = utf8.char(c) end
      return cells, l
    end
  end
end

describe("views.gantt", function()
  local f, ids, snap
  before_each(function()
    f, ids = fixture.scenario()
    snap = f:snapshot(90000)
  end)

  describe("raster", function()
    -- 90 cells over 0..90000 ns: one cell per microsecond, easy to check.
    local function rows()
      local r = gantt.raster(snap.tasks, 0, 90000, 90)
      for _, e in ipairs(snap.events) do r.feed(e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail) end
      local out = {}
      for _, row in ipairs(r.finish(90000)) do out[row.task.id] = row end
      return out
    end

    it("builds running, suspended, pending and finished segments from events", function()
      local w1 = rows()[ids.w1].cells
      -- spawn 2000, resume 3000, yield 5000, resume 20000, yield 25000,
      -- resume 50000, complete 60000
      assert.equal(gantt.NONE, w1[2])       -- [1000, 2000): not created yet
      assert.equal(gantt.PENDING, w1[3])    -- [2000, 3000)
      assert.equal(gantt.RUNNING, w1[4])    -- [3000, 4000)
      assert.equal(gantt.RUNNING, w1[5])
      assert.equal(gantt.SUSPENDED, w1[6])  -- [5000, 6000)
      assert.equal(gantt.SUSPENDED, w1[20])
      assert.equal(gantt.RUNNING, w1[21])   -- [20000, 21000)
      assert.equal(gantt.SUSPENDED, w1[50])
      assert.equal(gantt.RUNNING, w1[51])
      assert.equal(gantt.RUNNING, w1[60])
      assert.equal(gantt.FINISHED, w1[61])  -- after the end
      assert.equal(gantt.FINISHED, w1[90])
    end)

    it("marks inspection points and abnormal ends", function()
      local r = rows()
      assert.equal("point", r[ids.w1].marks[4])       -- point at 3500
      assert.equal("point", r[ids.main].marks[86])    -- point at 85000
      assert.equal("failed", r[ids.w2].marks[34])     -- fail at 33000
      assert.equal("cancelled", r[ids.victim].marks[71])
    end)

    it("keeps the highest-priority state when segments share a cell", function()
      local r = gantt.raster(snap.tasks, 0, 90000, 9) -- 10 us per cell
      for _, e in ipairs(snap.events) do r.feed(e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail) end
      r.finish(90000)
      local stuck = r.rows[4]
      assert.equal(ids.stuck, stuck.task.id)
      -- [30000, 40000) holds pending, 1 us of running and a long wait.
      assert.equal(gantt.RUNNING, stuck.cells[4])
    end)

    it("draws tasks without events from their records", function()
      local r = gantt.raster(snap.tasks, 0, 90000, 90)
      r.finish(90000) -- no event fed at all
      local by = {}
      for _, row in ipairs(r.rows) do by[row.task.id] = row end
      assert.equal(gantt.PENDING, by[ids.w1].cells[3])
      assert.equal(gantt.ACTIVE, by[ids.w1].cells[10])
      assert.equal(gantt.FINISHED, by[ids.w1].cells[70])
      assert.equal(gantt.SUSPENDED, by[ids.stuck].cells[80]) -- suspended since 36000
      assert.equal(gantt.RUNNING, by[ids.main].cells[85])     -- running since 80000
      assert.equal(gantt.PENDING, by[ids.idle].cells[80])
      assert.equal("failed", by[ids.w2].marks[34])
    end)
  end)

  describe("gantt()", function()
    it("draws one row per task ordered by start, with its state", function()
      local lines = gantt.gantt(snap, { width = 100 })
      local order = {}
      for _, l in ipairs(lines) do
        local id = l:match("^#(%d+) ")
        if id then order[#order + 1] = tonumber(id) end
      end
      assert.same({ 1, 2, 3, 4, 5, 6 }, order)
      local _, line = row_cells(lines, ids.w2)
      assert.truthy(line:find("worker;2", 1, true))
      assert.truthy(line:match("failed%s*$"))
    end)

    it("orders rows by creation time, not by id", function()
      snap.tasks[1].created, snap.tasks[2].created = 5000, 100
      local lines = gantt.gantt(snap, { width = 100 })
      local first
      for _, l in ipairs(lines) do
        first = first or l:match("^#(%d+) ")
      end
      assert.equal("2", first)
    end)

    it("fills exactly the requested width on every row", function()
      for _, width in ipairs({ 60, 80, 132 }) do
        local lines = gantt.gantt(snap, { width = width })
        local rows = 0
        for _, l in ipairs(lines) do
          if l:match("^#%d") then
            rows = rows + 1
            assert.equal(width, dlen(l))
          end
        end
        assert.equal(6, rows)
      end
    end)

    it("shows running, suspended, pending and finished glyphs and marks", function()
      local cells = row_cells(gantt.gantt(snap, { width = 100 }), ids.w1)
      local seen = {}
      for _, c in ipairs(cells) do seen[c] = true end
      for _, g in ipairs({ "█", "░", "┈", "·", "◆" }) do
        assert.is_true(seen[g], "missing glyph " .. g)
      end
      local failed = table.concat(row_cells(gantt.gantt(snap, { width = 100 }), ids.w2))
      assert.truthy(failed:find("✗", 1, true))
      local victim = table.concat(row_cells(gantt.gantt(snap, { width = 100 }), ids.victim))
      assert.truthy(victim:find("⊘", 1, true))
    end)

    it("has a time axis with ticks and units, and a legend", function()
      local lines = gantt.gantt(snap, { width = 100 })
      local n = #lines
      assert.truthy(lines[n - 2]:find("└", 1, true))
      assert.truthy(lines[n - 2]:find("┬", 1, true))
      assert.truthy(lines[n - 1]:match("^time %(µs%)"))
      assert.truthy(lines[n - 1]:find(" 20 ", 1, true))
      assert.truthy(lines[n]:match("^legend: █ running  ░ suspended"))
    end)

    it("picks the axis unit from the window", function()
      local ms = gantt.gantt(snap, { width = 100, from = 0, to = 50e6 })
      assert.truthy(ms[#ms - 1]:match("^time %(ms%)"))
      local s = gantt.gantt(snap, { width = 100, from = 0, to = 120e9 })
      assert.truthy(s[#s - 1]:match("^time %(s%)"))
      local nsl = gantt.gantt(snap, { width = 100, from = 3000, to = 3500 })
      assert.truthy(nsl[#nsl - 1]:match("^time %(ns%)"))
    end)

    it("falls back to ASCII", function()
      local lines = gantt.gantt(snap, { width = 80, ascii = true })
      for _, l in ipairs(lines) do
        assert.is_nil(l:find("[\128-\255]"), "non-ASCII byte in: " .. l)
      end
      local cells = table.concat(row_cells(lines, ids.w1, "|"))
      assert.truthy(cells:find("#", 1, true))
      assert.truthy(cells:find("-", 1, true))
      assert.truthy(lines[#lines - 1]:match("^time %(us%)"))
    end)

    it("colours with ANSI escapes only when asked", function()
      local plain = table.concat(gantt.gantt(snap, { width = 80 }), "\n")
      assert.is_nil(plain:find("\27[", 1, true))
      local colored = gantt.gantt(snap, { width = 80, color = true })
      local _, line = row_cells(colored, ids.w1)
      assert.truthy(line:find("\27[32m█", 1, true))
      assert.truthy(line:find("\27[0m", 1, true))
      -- Colours do not change the visible text.
      local stripped = {}
      for i, l in ipairs(colored) do stripped[i] = l:gsub("\27%[[%d;]*m", "") end
      assert.same(gantt.gantt(snap, { width = 80 }), stripped)
    end)

    it("filters by name pattern or function", function()
      local lines = gantt.gantt(snap, { width = 80, filter = "^worker" })
      local rows = {}
      for _, l in ipairs(lines) do rows[#rows + 1] = l:match("^#(%d+)") end
      assert.same({ tostring(ids.w1), tostring(ids.w2) }, rows)
      lines = gantt.gantt(snap, { width = 80, filter = function(t) return t.state == "pending" end })
      rows = {}
      for _, l in ipairs(lines) do rows[#rows + 1] = l:match("^#(%d+)") end
      assert.same({ tostring(ids.idle) }, rows)
    end)

    it("limits the window with from/to and hides tasks outside it", function()
      local lines = gantt.gantt(snap, { width = 80, from = 61500, to = 90000 })
      local rows = {}
      for _, l in ipairs(lines) do rows[#rows + 1] = l:match("^#(%d+)") end
      -- w1 and w2 ended before 61500
      assert.same({ tostring(ids.main), tostring(ids.stuck), tostring(ids.idle),
        tostring(ids.victim) }, rows)
      assert.truthy(lines[1]:find("61.5 µs .. 90.0 µs", 1, true))
    end)

    it("limits the number of rows and says how many are hidden", function()
      local lines = gantt.gantt(snap, { width = 80, limit = 2 })
      local rows = 0
      for _, l in ipairs(lines) do if l:match("^#%d") then rows = rows + 1 end end
      assert.equal(2, rows)
      assert.truthy(table.concat(lines, "\n"):find("(4 more tasks not shown)", 1, true))
    end)

    it("works without events, from the records", function()
      local lines = gantt.gantt(f:snapshot(90000, false), { width = 80 })
      local text = table.concat(lines, "\n")
      assert.truthy(text:find("drawn from task records only", 1, true))
      assert.truthy(text:find("▒", 1, true))
      assert.truthy(lines[#lines]:find("active", 1, true))
    end)

    it("says when early events were overwritten", function()
      local g = fixture.new({ capacity = 5 })
      local a = g:spawn(0, "a")
      for i = 1, 5 do g:resume(i * 1000, a); g:yield(i * 1000 + 500, a, "x.lua:1") end
      local lines = gantt.gantt(g:snapshot(), { width = 80 })
      assert.truthy(lines[2]:find("early events were overwritten", 1, true))
      -- Lost history is blank, the kept part is drawn.
      -- Kept: yield 3500, resume 4000, yield 4500, resume 5000, yield 5500.
      -- History before 3500 is lost and stays blank; the rest is drawn.
      local cells = row_cells(lines, a)
      local lost = math.floor(#cells * 3500 / 5500) - 1
      for i = 1, lost do assert.equal(" ", cells[i]) end
      local rest = table.concat(cells, "", lost + 2)
      assert.truthy(rest:find("█", 1, true))
      assert.truthy(rest:find("░", 1, true))
      assert.is_nil(rest:find(" ", 1, true))
    end)

    it("makes task names safe for the terminal", function()
      snap.tasks[1].name = "evil\27[2J\nname \255"
      local lines = gantt.gantt(snap, { width = 80 })
      local _, line = row_cells(lines, 1)
      assert.is_nil(line:find("%c"))
      assert.truthy(line:find("evil?[2J?name \239\191\189", 1, true))
      snap.tasks[1].name = "héllo"
      _, line = row_cells(gantt.gantt(snap, { width = 80, ascii = true }), 1, "|")
      assert.truthy(line:find("#1 h?llo", 1, true))
    end)

    it("handles an empty snapshot", function()
      local lines = gantt.gantt({ t = 0, tasks = {}, events = {} }, { width = 80 })
      assert.truthy(lines[#lines]:find("no tasks", 1, true))
    end)

    it("can be called as the module itself", function()
      assert.same(gantt.gantt(snap, { width = 70 }), gantt(snap, { width = 70 }))
    end)

    it("draws a random run with consistent rows", function()
      local g, t_end = fixture.random(11)
      local s = g:snapshot(t_end)
      local lines = gantt.gantt(s, { width = 120 })
      local rows = 0
      for _, l in ipairs(lines) do
        if l:match("^#%d") then
          rows = rows + 1
          local state = l:match("(%S+)%s*$")
          local id = tonumber(l:match("^#(%d+)"))
          assert.equal(s.tasks[id].state, state)
          local cells = table.concat(row_cells(lines, id))
          if state == "completed" then
            -- A completed task ends with finished cells (or its last run).
            assert.truthy(cells:match("[·█]$"))
          end
        end
      end
      assert.equal(#s.tasks, rows)
    end)

    it("rejects bad arguments with the standard message", function()
      local function err_of(...)
        local ok, err = pcall(gantt.gantt, ...)
        assert.is_false(ok)
        return err
      end
      assert.truthy(err_of(nil):find("bad argument #1 to 'gantt' (snapshot table expected, got nil)", 1, true))
      assert.truthy(err_of(snap, { filter = 3 }):find("bad argument #2 to 'gantt' (filter must be", 1, true))
      assert.truthy(err_of(snap, { filter = "[" }):find("malformed filter pattern", 1, true))
      assert.truthy(err_of(snap, { from = 10, to = 5 }):find("to must be greater than from", 1, true))
      assert.truthy(err_of(snap, { width = "wide" }):find("width must be a number", 1, true))
    end)

    it("reports argument errors at the caller's line", function()
      local ok, err = pcall(function() gantt.gantt(snap, 5) end)
      assert.is_false(ok)
      assert.truthy(err:match("gantt_spec%.lua:%d+: bad argument #2 to 'gantt'"))
    end)
  end)

  describe("ticks", function()
    it("chooses round steps and covers the window", function()
      local ticks, step = gantt.ticks(0, 90000, 90, 10)
      assert.equal(10000, step)
      assert.equal(0, ticks[1].t)
      assert.equal(1, ticks[1].cell)
      assert.equal(90000, ticks[#ticks].t)
      local t2, s2 = gantt.ticks(1234, 7890, 50, 10)
      assert.equal(2000, s2)
      assert.equal(2000, t2[1].t)
    end)

    it("labels ticks in a unit that keeps them distinct", function()
      local div, unit, dec = gantt.axis_unit(250)
      assert.same({ 1, "ns", 0 }, { div, unit, dec })
      div, unit, dec = gantt.axis_unit(500000)
      assert.same({ 1e3, "µs", 0 }, { div, unit, dec })
      local d, _, k = gantt.axis_unit(500000)
      assert.equal("2500", gantt.tick_label(2500000, d, k))
      d, _, k = gantt.axis_unit(2500000)
      assert.equal("2.5", gantt.tick_label(2500000, d, k))
      div, unit, dec = gantt.axis_unit(200000000, true)
      assert.same({ 1e6, "ms", 0 }, { div, unit, dec })
      assert.equal("us", select(2, gantt.axis_unit(5000, true)))
    end)
  end)
end)
