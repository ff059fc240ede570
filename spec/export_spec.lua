-- Specs of the exporters: every export is read back (JSON through
-- lua-cjson, CSV through an RFC 4180 parser, SVG through expat, HTML through
-- headless Chromium) and compared with the recorded tasks and events.
local cjson = require("cjson")
local lxp = require("lxp")
local export = require("async_inspect.export")
local folded = require("async_inspect.export.folded")
local fixture = require("spec.support.fixture")
local synthetic = require("spec.support.synthetic")
local trace_check = require("spec.support.trace_check")
local png = require("spec.support.png")

local T_END = 90000

local function tmp()
  local p = os.tmpname()
  return p
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function export_to_string(fn, ...)
  local p = tmp()
  fn(p, ...)
  local s = slurp(p)
  os.remove(p)
  return s
end

-- RFC 4180 parser: records of fields, quoted fields may hold , " CR LF.
local function parse_csv(s)
  local rows, row, field, i, n = {}, {}, {}, 1, #s
  local quoted = false
  while i <= n do
    local c = s:sub(i, i)
    if quoted then
      if c == '"' then
        if s:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1
        else quoted = false end
      else
        field[#field + 1] = c
      end
    elseif c == '"' then
      assert(#field == 0, "quote inside an unquoted field at " .. i)
      quoted = true
    elseif c == "," then
      row[#row + 1] = table.concat(field); field = {}
    elseif c == "\r" then
      assert(s:sub(i + 1, i + 1) == "\n", "bare CR at " .. i)
      row[#row + 1] = table.concat(field); field = {}
      rows[#rows + 1] = row; row = {}
      i = i + 1
    else
      assert(c ~= "\n", "bare LF outside quotes at " .. i)
      field[#field + 1] = c
    end
    i = i + 1
  end
  assert(not quoted, "unterminated quoted field")
  assert(#field == 0 and #row == 0, "last record not terminated by CRLF")
  return rows
end

-- Parse XML with expat; returns the element counts or raises with the
-- parser's message.
local function parse_xml(s)
  local counts, texts = {}, {}
  local p = lxp.new({
    StartElement = function(_, name) counts[name] = (counts[name] or 0) + 1 end,
    CharacterData = function(_, text) texts[#texts + 1] = text end,
  })
  local ok, msg, line = p:parse(s)
  assert(ok, ("XML error: %s at line %s"):format(tostring(msg), tostring(line)))
  ok, msg, line = p:parse()
  assert(ok, ("XML error at end: %s at line %s"):format(tostring(msg), tostring(line)))
  p:close()
  return counts, table.concat(texts, "\n")
end

-- The slices a trace must contain, derived independently from the events:
-- run = resume..yield/complete/fail/end, wait = yield..resume inset by 1 ns.
local function expected_slices(f, t_end)
  local runs, waits = {}, {}
  local state, since, label = {}, {}, {}
  local function close_wait(id, t)
    if t - since[id] >= 3 then
      waits[#waits + 1] = { tid = id, ts = since[id] + 1, dur = t - since[id] - 2,
        name = state[id] == "pending" and "pending" or label[id] }
    end
  end
  for _, e in ipairs(f.events) do
    local id, t = e.task, e.t
    if e.kind == "spawn" then state[id], since[id] = "pending", t
    elseif e.kind == "resume" then
      close_wait(id, t)
      state[id], since[id] = "run", t
    elseif e.kind == "yield" then
      if state[id] == "run" then runs[#runs + 1] = { tid = id, ts = since[id], dur = t - since[id] } end
      state[id], since[id], label[id] = "wait", t, e.detail or e.loc
    elseif e.kind == "complete" or e.kind == "fail" or e.kind == "cancel" or e.kind == "drop" then
      if state[id] == "run" then runs[#runs + 1] = { tid = id, ts = since[id], dur = t - since[id] }
      else close_wait(id, t) end
      state[id] = "done"
    end
  end
  for id, s in pairs(state) do
    if s == "run" then runs[#runs + 1] = { tid = id, ts = since[id], dur = t_end - since[id] }
    elseif s == "wait" or s == "pending" then close_wait(id, t_end + 1) end
  end
  local function key(x) return ("%d@%d+%d%s"):format(x.tid, x.ts, x.dur, x.name and (":" .. x.name) or "") end
  local rk, wk = {}, {}
  for _, r in ipairs(runs) do rk[#rk + 1] = key(r) end
  for _, w in ipairs(waits) do wk[#wk + 1] = key(w) end
  table.sort(rk)
  table.sort(wk)
  return rk, wk
end

local function trace_slices(doc)
  local rk, wk = {}, {}
  for _, e in ipairs(doc.traceEvents) do
    if e.ph == "X" then
      local k = ("%d@%d+%d"):format(e.tid, trace_check.ns(e.ts), trace_check.ns(e.dur))
      if e.cat == "run" then rk[#rk + 1] = k else wk[#wk + 1] = k .. ":" .. e.name end
    end
  end
  table.sort(rk)
  table.sort(wk)
  return rk, wk
end

local function by_ph(doc, ph, cat)
  local out = {}
  for _, e in ipairs(doc.traceEvents) do
    if e.ph == ph and (cat == nil or e.cat == cat) then out[#out + 1] = e end
  end
  return out
end

describe("export", function()
  local f, ids
  before_each(function()
    f, ids = fixture.scenario()
  end)

  describe("sources", function()
    it("source_snapshot streams the snapshot's events in order, from a seq", function()
      local snap = f:snapshot(T_END)
      local src = export.source_snapshot(snap)
      assert.equal(snap.tasks, src.tasks)
      assert.equal(T_END, src.t)
      local seqs = {}
      for seq, t, task, kind, loc, other, detail in src.iter_events() do
        local e = snap.events[seq]
        assert.same({ e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail },
          { seq, t, task, kind, loc, other, detail })
        seqs[#seqs + 1] = seq
      end
      assert.equal(#snap.events, #seqs)
      local from = {}
      for seq in src.iter_events(20) do from[#from + 1] = seq end
      assert.equal(20, from[1])
      assert.equal(#snap.events - 19, #from)
    end)

    it("source_live reads a module with the ai interface", function()
      local fake = { tasks = function() return { { id = 1, name = "x" } } end,
        stats = function() return { tasks = 1 } end, now = function() return 42 end,
        iter_events = function() return function() end end }
      local src = export.source_live(fake)
      assert.same({ { id = 1, name = "x" } }, src.tasks)
      assert.equal(42, src.t)
      assert.equal(fake.iter_events, src.iter_events)
    end)
  end)

  describe("chrome_trace", function()
    local doc, text, summary
    before_each(function()
      local p = tmp()
      summary = export.chrome_trace(p, { source = f:source(T_END) })
      text = slurp(p)
      os.remove(p)
      doc = cjson.decode(text)
    end)

    it("is a valid trace for Perfetto, chrome://tracing and speedscope", function()
      assert.same({}, trace_check.validate(doc))
      assert.equal("ns", doc.displayTimeUnit)
      assert.equal(#f.events, summary.events)
      assert.equal(#doc.traceEvents, summary.records)
      assert.equal(#text, summary.bytes)
    end)

    it("has one named track per task, sorted by start", function()
      local names, order = {}, {}
      for _, e in ipairs(by_ph(doc, "M")) do
        if e.name == "thread_name" then names[e.tid] = e.args.name end
        if e.name == "thread_sort_index" then order[e.tid] = e.args.sort_index end
        if e.name == "process_name" then assert.equal("async_inspect", e.args.name) end
      end
      for _, task in ipairs(f:task_records()) do
        assert.equal(task.name, names[task.id])
        assert.equal(task.id, order[task.id]) -- the scenario creates tasks in id order
      end
    end)

    it("has a run slice for every resume..yield/complete/fail, to the nanosecond", function()
      local want_runs = expected_slices(f, T_END)
      local got_runs = trace_slices(doc)
      assert.same(want_runs, got_runs)
    end)

    it("has a wait slice between yield and resume, named by await label or location", function()
      local _, want_waits = expected_slices(f, T_END)
      local _, got_waits = trace_slices(doc)
      assert.same(want_waits, got_waits)
      local names = {}
      for _, e in ipairs(by_ph(doc, "X", "wait")) do names[e.name] = true end
      assert.is_true(names["http get"])   -- a label
      assert.is_true(names["timer.lua:7"]) -- no label: the location
      assert.is_true(names["pending"])
    end)

    it("carries yield location, await label, wake kind and errors in args", function()
      local until_, await, wake, err = false, false, false, false
      for _, e in ipairs(by_ph(doc, "X")) do
        if e.args["until"] == "net.lua:42" and e.args.await == "http get" then until_, await = true, true end
        if e.args.wake == "tcp" then wake = true end
        if e.args.error == 'app.lua:55: bad "value" <here> & there' then err = true end
      end
      assert.is_true(until_ and await and wake and err)
    end)

    it("keeps nanosecond fractions in microsecond timestamps", function()
      local g = fixture.new()
      local a = g:spawn(1234567, "a")
      g:resume(1234568, a)
      g:yield(1240001, a, "x.lua:1")
      local s = export_to_string(export.chrome_trace, { source = g:source(1250000) })
      assert.truthy(s:find('"ts":1234.568,"dur":5.433', 1, true))
      assert.truthy(s:find('"ts":1240.002,', 1, true)) -- the open wait, inset by 1 ns
    end)

    it("has instant events for points and abnormal ends", function()
      local points = {}
      for _, e in ipairs(by_ph(doc, "i")) do
        points[e.name] = e
        assert.equal("t", e.s)
      end
      assert.equal(ids.w1, points.fetch.tid)
      assert.equal(3.5, points.fetch.ts)
      assert.equal("url=/a", points.fetch.args.detail)
      assert.equal(ids.main, points.checkpoint.tid)
      assert.equal(ids.w2, points.failed.tid)
      assert.equal(ids.victim, points.cancelled.tid)
    end)

    it("links spawner and resumer to the task with flow events", function()
      local links = {}
      local starts = {}
      for _, e in ipairs(by_ph(doc, "s")) do starts[e.id] = e end
      for _, e in ipairs(by_ph(doc, "f")) do
        local s = starts[e.id]
        links[#links + 1] = ("%s %d->%d"):format(e.name, s.tid, e.tid)
      end
      table.sort(links)
      assert.same({
        "resume 1->2", "resume 1->3", "resume 1->3", "resume 1->4",
        "spawn 1->2", "spawn 1->3", "spawn 1->4",
      }, links)
    end)

    it("can leave out flows and waits", function()
      local s = export_to_string(export.chrome_trace, { source = f:source(T_END), flows = false, waits = false })
      local d = cjson.decode(s)
      assert.equal(0, #by_ph(d, "s") + #by_ph(d, "f") + #by_ph(d, "X", "wait"))
      assert.equal(#by_ph(doc, "X", "run"), #by_ph(d, "X", "run"))
    end)

    it("writes to an open file handle without closing it", function()
      local p = tmp()
      local fh = assert(io.open(p, "wb"))
      export.chrome_trace(fh, { source = f:source(T_END), process_name = "my app" })
      assert.equal("file", io.type(fh))
      fh:close()
      local d = cjson.decode(slurp(p))
      os.remove(p)
      assert.equal("my app", d.traceEvents[1].args.name)
    end)

    it("gives tracks to tasks known only from events", function()
      local snap = f:snapshot(T_END)
      table.remove(snap.tasks, ids.w1) -- an evicted record
      local d = cjson.decode(export_to_string(export.chrome_trace, { snapshot = snap }))
      local name
      for _, e in ipairs(by_ph(d, "M")) do
        if e.name == "thread_name" and e.tid == ids.w1 then name = e.args.name end
      end
      assert.equal("worker 1 (a)", name) -- from the rename event
      assert.same({}, trace_check.validate(d))
    end)

    it("reads recordings with float times the same way", function()
      local snap = f:snapshot(T_END)
      for _, e in ipairs(snap.events) do e.t = e.t + 0.0 end
      snap.t = snap.t + 0.0
      local a = export_to_string(export.chrome_trace, { snapshot = snap })
      assert.equal(text, a)
    end)

    it("is valid for random runs with nested resumes and 1 ns gaps", function()
      for seed = 1, 12 do
        local g, t_end = fixture.random(seed, 500, 50)
        local d = cjson.decode(export_to_string(export.chrome_trace, { source = g:source(t_end) }))
        assert.same({}, trace_check.validate(d))
        local want_runs, want_waits = expected_slices(g, t_end)
        local got_runs, got_waits = trace_slices(d)
        assert.same(want_runs, got_runs)
        assert.same(want_waits, got_waits)
        assert.is_true(#by_ph(d, "f") > 0)
      end
    end)

    it("escapes names into valid JSON and UTF-8", function()
      local g = fixture.new()
      local a = g:spawn(0, 'quote " back \\ nl \n tab \t ctl \1 bad \255 é')
      g:resume(10, a)
      g:yield(20, a, "x.lua:1", "lbl\0zero")
      local d = cjson.decode(export_to_string(export.chrome_trace, { source = g:source(100) }))
      assert.equal('quote " back \\ nl \n tab \t ctl \1 bad \239\191\189 é', d.traceEvents[2].args.name)
      assert.equal("lbl\0zero", by_ph(d, "X", "run")[1].args.await)
    end)
  end)

  describe("folded", function()
    it("weights stacks by busy time, without double counting nested resumes", function()
      local text = export.folded({ source = f:source(T_END) })
      assert.equal(table.concat({
        "main loop;(running) 10000",
        "main loop;loop tick;app.lua:30 11000",
        "stuck <reader>;recv;chan.lua:9 1000",
        "victim;sleep;app.lua:81 1000",
        "worker 1 (a);(complete) 10000",
        "worker 1 (a);http get;net.lua:42 7000",
        "worker,2;(failed) 2000",
        "worker,2;timer.lua:7 3000",
      }, "\n") .. "\n", text)
    end)

    it("weights stacks by wait time, including open waits and pending time", function()
      local text = export.folded({ source = f:source(T_END), weight = "wait" })
      assert.equal(table.concat({
        "main loop;(pending) 1000",
        "main loop;loop tick;app.lua:30 60000",
        "never started;(pending) 29000",
        "stuck <reader>;(pending) 1000",
        "stuck <reader>;recv;chan.lua:9 54000",
        "victim;(pending) 1000",
        "victim;sleep;app.lua:81 6000",
        "worker 1 (a);(pending) 1000",
        "worker 1 (a);http get;net.lua:42 40000",
        "worker,2;(pending) 3500",
        "worker,2;timer.lua:7 22000",
      }, "\n") .. "\n", text)
    end)

    it("busy time adds up to the time some task was running", function()
      for seed = 1, 5 do
        local g, t_end = fixture.random(seed)
        local total = 0
        for line in export.folded({ source = g:source(t_end) }):gmatch("[^\n]+") do
          total = total + tonumber(line:match("(%d+)$"))
        end
        -- Independently: the union of time where the resume stack is non-empty.
        local depth, since, busy = 0, 0, 0
        for _, e in ipairs(g.events) do
          if e.kind == "resume" then
            if depth == 0 then since = e.t end
            depth = depth + 1
          elseif e.kind == "yield" or ((e.kind == "complete" or e.kind == "fail")
              and depth > 0 and g.tasks[e.task].resumes > 0) then
            depth = depth - 1
            if depth == 0 then busy = busy + e.t - since end
          end
        end
        if depth > 0 then busy = busy + t_end - since end
        assert.equal(busy, total)
      end
    end)

    it("escapes ';' and line breaks in frames", function()
      assert.equal("a,b c d", folded.frame("a;b\nc\td"))
      assert.equal("?", folded.frame(" \n "))
      local g = fixture.new()
      local a = g:spawn(0, "x;y\nz")
      g:resume(10, a)
      g:yield(30, a, "f.lua:1", "wait;for\r\nit")
      local line = export.folded({ source = g:source(40) })
      assert.equal("x,y z;wait,for  it;f.lua:1 20\n", line)
    end)

    it("writes to a path and returns a summary", function()
      local p = tmp()
      local res = export.folded({ source = f:source(T_END), path = p, weight = "wait" })
      local text = slurp(p)
      os.remove(p)
      assert.equal(export.folded({ source = f:source(T_END), weight = "wait" }), text)
      assert.equal(11, res.lines)
      assert.equal(#text, res.bytes)
    end)

    it("returns an empty string when nothing ran", function()
      assert.equal("", export.folded({ source = fixture.new():source(0) }))
    end)
  end)

  describe("svg_flamegraph", function()
    local function svg(opts)
      opts = opts or {}
      opts.source = opts.source or f:source(T_END)
      return export_to_string(export.svg_flamegraph, opts)
    end

    it("is valid XML with a rectangle and a tooltip per frame", function()
      local s = svg()
      local counts, texts = parse_xml(s)
      assert.equal(1, counts.svg)
      -- frames: all + 6 task names + tails
      local stacks = folded.collect(f:source(T_END), "busy")
      local frames = { all = true }
      for stack in pairs(stacks) do
        local path = ""
        for fr in stack:gmatch("[^;]+") do path = path .. ";" .. fr; frames[path] = true end
      end
      local n = 0
      for _ in pairs(frames) do n = n + 1 end
      assert.equal(n, counts.title)
      assert.equal(n + 1, counts.rect) -- plus the background
      assert.truthy(texts:find("stuck <reader>", 1, true))
      assert.truthy(s:find("stuck &lt;reader&gt;", 1, true))
      assert.truthy(s:find("^<%?xml"))
      assert.is_nil(s:find("<script", 1, true))
    end)

    it("draws widths proportional to weight", function()
      local s = svg({ width = 1000 })
      local widths = {}
      for title, w in s:gmatch('<g><title>([^<]*)</title><rect x="[%d.]+" y="%d+" width="([%d.]+)"') do
        widths[title:match("^(.-) %(")] = tonumber(w)
      end
      -- total busy 45000 ns over 1000 - 2*10 px
      assert.near(980, widths.all, 0.01)
      assert.near(980 * 21000 / 45000, widths["main loop"], 0.01)
      assert.near(980 * 2000 / 45000, widths["(failed)"], 0.01)
    end)

    it("colours frames by a hash of their name", function()
      local s = svg()
      local colors = {}
      for title, fill in s:gmatch('<title>([^<(]*) %(.-</title><rect [^>]-fill="([^"]+)"') do
        colors[title] = colors[title] or {}
        colors[title][fill] = true
      end
      local distinct = {}
      for _, set in pairs(colors) do
        local k = 0
        for fill in pairs(set) do k = k + 1; distinct[fill] = true end
        assert.equal(1, k) -- a name always gets the same colour
      end
      local nd = 0
      for _ in pairs(distinct) do nd = nd + 1 end
      assert.is_true(nd > 5)
    end)

    it("renders wait graphs and survives hostile names", function()
      local g = fixture.new()
      local a = g:spawn(0, "<b>&amp;\1\255\239\191\190]]>")
      g:resume(10, a)
      g:yield(30, a, "x.lua:1", '"q" \'a\'')
      g:resume(100, a)
      local s = svg({ source = g:source(200), weight = "wait" })
      local _, texts = parse_xml(s)
      -- ';' separates frames, so the name's "&amp;" shows as "&amp,"
      assert.truthy(texts:find("<b>&amp,", 1, true))
      assert.truthy(texts:find('"q" \'a\'', 1, true))
      assert.truthy(texts:find("Wait time", 1, true))
    end)

    it("says so when there is no data", function()
      local s = svg({ source = fixture.new():source(0) })
      local _, texts = parse_xml(s)
      assert.truthy(texts:find("no data", 1, true))
    end)
  end)

  describe("json", function()
    it("round-trips stats, tasks and events through a JSON parser", function()
      local p = tmp()
      local res = export.json(p, { source = f:source(T_END) })
      local doc = cjson.decode(slurp(p))
      os.remove(p)
      assert.equal(1, doc.version)
      assert.equal(T_END, doc.t)
      assert.same(f:stats(T_END), doc.stats)
      assert.same(f:task_records(), doc.tasks)
      local events = {}
      for i, e in ipairs(f.events) do events[i] = e end
      assert.same(events, doc.events)
      assert.equal(#f.events, res.events)
      assert.equal(#f.list, res.tasks)
    end)

    it("keeps the documented field order and extra scalar fields", function()
      local snap = f:snapshot(T_END)
      snap.tasks[1]["function"] = "app.lua:9"
      snap.tasks[1].nested = { 1, 2 } -- not a scalar: left out
      local s = export_to_string(export.json, { snapshot = snap })
      local first = s:match('"tasks":%[\n(%b{})')
      assert.truthy(first:match('^{"id":1,"name":"main loop","state":"running"'))
      assert.truthy(first:find('"function":"app.lua:9"}$'))
      assert.is_nil(first:find("nested", 1, true))
    end)

    it("can leave out the events", function()
      local doc = cjson.decode(export_to_string(export.json, { source = f:source(T_END), events = false }))
      assert.equal(0, #doc.events)
      assert.equal(#f.list, #doc.tasks)
    end)

    it("makes strings valid UTF-8 JSON", function()
      local g = fixture.new()
      local a = g:spawn(0, "ok é \255\254 \1")
      g:resume(1, a)
      g:fail(2, a, "bad\0byte \"quoted\"")
      local doc = cjson.decode(export_to_string(export.json, { source = g:source(3) }))
      assert.equal("ok é \239\191\189\239\191\189 \1", doc.tasks[1].name)
      assert.equal("bad\0byte \"quoted\"", doc.events[3].detail)
    end)
  end)

  describe("csv", function()
    local function round_trip(src)
      local tp, ep = tmp(), tmp()
      local res = export.csv(tp, ep, { source = src })
      local traw, eraw = slurp(tp), slurp(ep)
      os.remove(tp)
      os.remove(ep)
      return parse_csv(traw), parse_csv(eraw), res, traw, eraw
    end

    local TASK_COLS = { "id", "name", "parent", "state", "kind", "created", "created_at",
      "first_resume", "last_change", "ended", "resumes", "busy", "where", "where_fn",
      "await", "wait", "error", "traceback" }
    local NUMERIC = { id = true, parent = true, created = true, first_resume = true,
      last_change = true, ended = true, resumes = true, busy = true }

    it("round-trips task records and events exactly (RFC 4180)", function()
      local tasks, events, res = round_trip(f:source(T_END))
      assert.same(TASK_COLS, tasks[1])
      assert.same({ "seq", "t", "task", "kind", "loc", "other", "detail" }, events[1])
      local want = f:task_records()
      assert.equal(#want + 1, #tasks)
      for i, rec in ipairs(want) do
        local row = tasks[i + 1]
        for j, col in ipairs(TASK_COLS) do
          local v = row[j]
          if v == "" then v = nil elseif NUMERIC[col] then v = math.tointeger(tonumber(v)) end
          assert.equal(rec[col], v, ("task %d column %s"):format(rec.id, col))
        end
      end
      assert.equal(#f.events + 1, #events)
      for i, e in ipairs(f.events) do
        local row = events[i + 1]
        local function num(s) return s ~= "" and math.tointeger(tonumber(s)) or nil end
        local function str(s) return s ~= "" and s or nil end
        assert.same({ e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail },
          { num(row[1]), num(row[2]), num(row[3]), row[4], str(row[5]), num(row[6]), str(row[7]) })
      end
      assert.equal(#want, res.tasks)
      assert.equal(#f.events, res.events)
    end)

    it("quotes commas, quotes and line breaks and ends lines with CRLF", function()
      local g = fixture.new()
      local a = g:spawn(0, 'say "hi", then\r\nleave')
      g:resume(1, a)
      g:fail(2, a, "multi\nline, error")
      local tasks, events, _, traw = round_trip(g:source(3))
      assert.equal('say "hi", then\r\nleave', tasks[2][2])
      assert.truthy(traw:find('"say ""hi"", then\r\nleave"', 1, true))
      assert.equal("multi\nline, error", events[4][7])
      assert.equal("multi\nline, error", tasks[2][17])
    end)
  end)

  describe("html", function()
    local report
    before_each(function()
      report = export_to_string(export.html, { source = f:source(T_END), title = "Demo <run>" })
    end)

    it("is one self-contained file with no network access", function()
      -- Nothing to fetch: no src/href attributes, no @import or url().
      assert.is_nil(report:find("src=", 1, true))
      assert.is_nil(report:find("href=", 1, true))
      assert.is_nil(report:find("@import", 1, true))
      assert.is_nil(report:find("url(", 1, true))
      -- The only URL is the SVG namespace name, which is never fetched.
      for url in report:gmatch("https?://[^\"'%s<]+") do
        assert.equal("http://www.w3.org/2000/svg", url)
      end
      assert.truthy(report:find("Content-Security-Policy", 1, true))
      assert.truthy(report:find("default-src 'none'", 1, true))
    end)

    it("has a summary, stuck and failed tasks, timeline, flamegraphs and a task table", function()
      for _, id in ipairs({ 'id="summary"', 'id="stuck"', 'id="failed"', 'id="timeline"',
          'id="flamegraph"', 'id="task-table"' }) do
        assert.truthy(report:find(id, 1, true), id)
      end
      assert.truthy(report:find("<title>Demo &lt;run&gt;</title>", 1, true))
      -- stuck: the suspended task with where/await/wait, the never started one
      local stuck = report:match('<table id="stuck%-table".-</table>')
      assert.truthy(stuck:find("stuck &lt;reader&gt;", 1, true))
      assert.truthy(stuck:find("chan.lua:9", 1, true))
      assert.truthy(stuck:find("lock:queue", 1, true))
      assert.truthy(stuck:find("never started", 1, true))
      assert.is_nil(stuck:find("victim", 1, true))
      -- failed with its error and traceback
      assert.truthy(report:find("bad &quot;value&quot; &lt;here&gt; &amp; there", 1, true))
      assert.truthy(report:find("<summary>traceback</summary>", 1, true))
      -- a static row per task
      local rows = select(2, report:match('<table id="task%-table".-</table>'):gsub("<tr>", ""))
      assert.equal(#f.list + 1, rows)
      -- two inline SVG flamegraphs and the timeline
      assert.equal(3, select(2, report:gsub("<svg ", "")))
    end)

    it("embeds SVGs that parse as XML", function()
      for svg in report:gmatch("<svg .-</svg>") do
        local counts = parse_xml(svg)
        assert.is_true((counts.rect or 0) > 5)
      end
    end)

    it("renders in headless Chromium with JavaScript working and no console errors", function()
      assert.truthy(os.execute("command -v chromium >/dev/null 2>&1"),
        "chromium is needed for this spec (apt-get install chromium)")
      local base = os.tmpname() -- created empty: the page and screenshot get suffixes
      local p = base .. ".html"
      local fh = assert(io.open(p, "wb"))
      fh:write(report)
      fh:close()
      local profile = os.tmpname()
      os.remove(profile)
      local shot = base .. ".png"
      local flags = "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
        .. "--disable-background-networking --disable-component-update --disable-sync "
        .. "--enable-logging=stderr --v=0 --user-data-dir=" .. profile
      local log = os.tmpname()
      -- the sanitiser run preloads libasan into every child: not into the browser
      local browser = "env -u LD_PRELOAD timeout 120 chromium"
      local dom_cmd = ("%s %s --dump-dom file://%s 2>%s"):format(browser, flags, p, log)
      local pipe = assert(io.popen(dom_cmd))
      local dom = pipe:read("a")
      pipe:close()
      os.execute(("%s %s --screenshot=%s --window-size=1200,900 file://%s 2>>%s")
        :format(browser, flags, shot, p, log))
      local errors = slurp(log)
      os.execute("rm -rf " .. profile)
      os.remove(log)
      os.remove(p)
      os.remove(base)
      assert.truthy(dom:find('data-selfcheck="ok"', 1, true), "page self-check did not pass")
      assert.truthy(dom:find("Click a column header to sort.", 1, true))
      -- The page logs nothing: any console line is an error, a CSP violation
      -- or a blocked request.
      for line in errors:gmatch("[^\n]+") do
        assert.is_nil(line:find(":CONSOLE", 1, true), line)
        assert.is_nil(line:find("Uncaught", 1, true), line)
      end
      local img = png.read(shot)
      os.remove(shot)
      assert.equal(1200, img.width)
      assert.equal(900, img.height)
      local ink, colored = 0, 0
      for y = 1, img.height, 2 do
        for x = 1, img.width, 2 do
          local r, g, b = img.pixel(x, y)
          if r + g + b < 720 then ink = ink + 1 end
          if math.max(r, g, b) - math.min(r, g, b) > 60 then colored = colored + 1 end
        end
      end
      local total = (img.width // 2) * (img.height // 2)
      assert.is_true(ink / total > 0.03, ("page looks blank: %.4f ink"):format(ink / total))
      assert.is_true(colored > 100, "no coloured pixels: the charts did not render")
    end)
  end)

  describe("streaming", function()
    -- Peak live memory (after a full collection) while exporting n events,
    -- probed every `every` events.
    local function peak_kb(run, n, every)
      local peak = 0
      local function probe()
        collectgarbage()
        collectgarbage()
        local kb = collectgarbage("count")
        if kb > peak then peak = kb end
      end
      local src = synthetic.source(n, 100, probe, every)
      local p = tmp()
      collectgarbage()
      run(p, src)
      os.remove(p)
      return peak
    end

    local cases = {
      chrome_trace = function(p, src) export.chrome_trace(p, { source = src }) end,
      json = function(p, src) export.json(p, { source = src }) end,
      csv = function(p, src)
        local tp = tmp()
        export.csv(tp, p, { source = src })
        os.remove(tp)
      end,
      folded = function(p, src) export.folded({ path = p, source = src }) end,
      svg_flamegraph = function(p, src) export.svg_flamegraph(p, { source = src }) end,
      html = function(p, src) export.html(p, { source = src }) end,
    }
    for _, name in ipairs({ "chrome_trace", "json", "csv", "folded", "svg_flamegraph", "html" }) do
      it(name .. " uses no more memory for 1,000,000 events than for 1,000", function()
        -- The small export is probed every 10 events, so its peak includes
        -- a full output buffer; the big one every 20,000 events.
        local small = peak_kb(cases[name], 1000, 10)
        local big = peak_kb(cases[name], 1000000, 20000)
        -- Lua's string table is sized by the short strings alive between two
        -- collections, which moves the heap by up to a few hundred KiB from run
        -- to run; keeping even one byte per event would add 976 KiB here
        assert.is_true(big <= small + 512, ("%s: %.0f KiB for 1e6 events vs %.0f KiB for 1e3")
          :format(name, big, small))
      end)
    end
  end)

  describe("argument checks", function()
    local function err_of(fn, ...)
      local ok, e = pcall(fn, ...)
      assert.is_false(ok)
      return e
    end

    it("reports bad arguments in the standard format at the caller", function()
      local src = f:source(T_END)
      local e = err_of(function() export.chrome_trace(nil, { source = src }) end)
      assert.truthy(e:match("export_spec%.lua:%d+: bad argument #1 to 'chrome_trace' "
        .. "%(file name or file handle expected, got nil%)"))
      e = err_of(function() export.json("x.json", 5) end)
      assert.truthy(e:match("export_spec%.lua:%d+: bad argument #2 to 'json' %(table expected, got number%)"))
      e = err_of(function() export.folded({ weight = "cpu", source = src }) end)
      assert.truthy(e:match("export_spec%.lua:%d+: bad argument #1 to 'folded' %(weight must be"))
      e = err_of(function() export.csv("a.csv", 3, { source = src }) end)
      assert.truthy(e:match("bad argument #2 to 'csv'"))
      e = err_of(function() export.html("r.html", { source = { tasks = {} } }) end)
      assert.truthy(e:match("export_spec%.lua:%d+: bad argument #2 to 'html' "
        .. "%(source must be a table with tasks and iter_events%)"))
      e = err_of(function() export.html("r.html", { source = src, max_rows = 0 }) end)
      assert.truthy(e:match("bad argument #2 to 'html' %(max_rows must be a positive integer%)"))
      e = err_of(function() export.svg_flamegraph("f.svg", { source = src, width = 10 }) end)
      assert.truthy(e:match("bad argument #2 to 'svg_flamegraph' %(width must be"))
      e = err_of(function() export.source_snapshot(42) end)
      assert.truthy(e:match("export_spec%.lua:%d+: bad argument #1 to 'source_snapshot'"))
      e = err_of(function() export.bind({}) end)
      assert.truthy(e:match("bad argument #1 to 'bind'"))
    end)

    it("reports a file that cannot be opened", function()
      local e = err_of(function() export.json("/nonexistent-dir/x.json", { source = f:source(T_END) }) end)
      assert.truthy(e:find("json: cannot open /nonexistent-dir/x.json", 1, true))
    end)

    it("asks for a source when none is given and async_inspect is not loaded", function()
      local saved = package.loaded["async_inspect"]
      package.loaded["async_inspect"] = nil
      local e = err_of(function() export.chrome_trace("t.json") end)
      package.loaded["async_inspect"] = saved
      assert.truthy(e:find("bad argument #2 to 'chrome_trace' (no source", 1, true))
    end)
  end)

  describe("bind", function()
    it("defaults every exporter to the bound inspector", function()
      local snap = f:snapshot(T_END)
      local src = export.source_snapshot(snap)
      local fake = { tasks = function() return snap.tasks end, stats = function() return snap.stats end,
        now = function() return T_END end, iter_events = src.iter_events }
      local bound = export.bind(fake)
      assert.equal(export.folded({ source = f:source(T_END) }), bound.folded())
      local a = export_to_string(bound.chrome_trace)
      local b = export_to_string(export.chrome_trace, { source = f:source(T_END) })
      assert.equal(b, a)
    end)
  end)
end)

-- With the C core built, export real coroutines run under the inspector.
local core_built = io.open("build/async_inspect/core.so", "rb")
if core_built then core_built:close() end

describe("export of real coroutines", function()
  if not core_built then
    it("needs the C core (build/async_inspect/core.so)", function()
      pending("core not built: run the build first")
    end)
    return
  end
  local ai = require("async_inspect")
  local was_installed
  setup(function() was_installed = ai.is_installed() end)
  teardown(function() if not was_installed then ai.uninstall() end end)

  local function run_program()
    ai.install()
    ai.reset()
    local workers = {}
    local main = coroutine.create(function()
      for i = 1, 3 do
        local w = coroutine.create(function()
          for step = 1, 2 do
            ai.point("step", tostring(step))
            coroutine.yield(step)
          end
          if i == 2 then error("worker 2 gave up") end
          return i
        end)
        ai.name(w, "worker " .. i)
        workers[i] = w
        coroutine.resume(w)
      end
      coroutine.yield("spawned")
      for _, w in ipairs(workers) do coroutine.resume(w) end
    end)
    ai.name(main, "main")
    coroutine.resume(main)
    coroutine.resume(main)
    for _, w in ipairs(workers) do coroutine.resume(w) end
    local stuck = coroutine.create(function() coroutine.yield("forever") end)
    ai.name(stuck, "stuck")
    coroutine.resume(stuck)
    return workers, stuck
  end

  it("exports a Chrome trace matching the recorded events", function()
    run_program()
    local tasks = ai.tasks()
    local p = os.tmpname()
    ai.export.chrome_trace(p)
    local doc = cjson.decode(slurp(p))
    os.remove(p)
    assert.same({}, trace_check.validate(doc))
    local runs, yields_and_ends = 0, 0
    for _, e in ipairs(doc.traceEvents) do
      if e.ph == "X" and e.cat == "run" then runs = runs + 1 end
    end
    for _, _, _, kind in ai.iter_events() do
      if kind == "yield" or kind == "complete" or kind == "fail" then yields_and_ends = yields_and_ends + 1 end
    end
    assert.equal(yields_and_ends, runs)
    local names = {}
    for _, e in ipairs(doc.traceEvents) do
      if e.ph == "M" and e.name == "thread_name" then names[e.args.name] = true end
    end
    for _, t in ipairs(tasks) do assert.is_true(names[t.name], t.name) end
    local spawns = 0
    for _, e in ipairs(doc.traceEvents) do
      if e.ph == "f" and e.name == "spawn" then spawns = spawns + 1 end
    end
    assert.equal(3, spawns) -- main spawned three workers
  end)

  it("exports JSON and CSV that read back as the live records and events", function()
    -- Hold the coroutines: a collected suspended one would turn "dropped"
    -- between the export and the comparison.
    local workers, stuck = run_program()
    local p = os.tmpname()
    ai.export.json(p)
    local doc = cjson.decode(slurp(p))
    os.remove(p)
    local live = ai.tasks()
    assert.equal(#live, #doc.tasks)
    for i, t in ipairs(live) do
      for _, k in ipairs({ "id", "name", "state", "created", "busy", "resumes", "where", "error" }) do
        assert.equal(t[k], doc.tasks[i][k])
      end
    end
    local i = 0
    for seq, t, task, kind, loc, other, detail in ai.iter_events() do
      i = i + 1
      local e = doc.events[i]
      assert.same({ seq, t, task, kind, loc, other, detail },
        { e.seq, e.t, e.task, e.kind, e.loc, e.other, e.detail })
    end
    assert.equal(i, #doc.events)
    local tp, ep = os.tmpname(), os.tmpname()
    ai.export.csv(tp, ep)
    local rows = parse_csv(slurp(ep))
    os.remove(tp)
    os.remove(ep)
    assert.equal(i + 1, #rows)
    assert.equal("suspended", coroutine.status(stuck))
    assert.equal(3, #workers)
  end)

  it("shows real tasks in folded stacks, SVG, HTML and the Gantt view", function()
    run_program()
    -- The stuck task waits at its yield (no await label): its location.
    local text = ai.export.folded({ weight = "wait" })
    assert.truthy(text:match("\nstuck;[^\n]*export_spec%.lua:%d+ %d+\n"))
    assert.truthy(ai.export.folded():match("\nworker 2;%(failed%) %d+\n"))
    local p = os.tmpname()
    ai.export.svg_flamegraph(p)
    parse_xml(slurp(p))
    ai.export.html(p)
    local html = slurp(p)
    os.remove(p)
    assert.truthy(html:find("worker 2 gave up", 1, true))
    local gantt = require("async_inspect.views.gantt")
    local lines = gantt.gantt(ai.snapshot({ events = true }), { width = 100 })
    local joined = table.concat(lines, "\n")
    for _, name in ipairs({ "main", "worker 1", "worker 2", "worker 3", "stuck" }) do
      assert.truthy(joined:find(name, 1, true), name)
    end
    assert.truthy(joined:find("✗", 1, true))
  end)
end)
