-- The dashboard: key decoding, the state machine, and end to end in a real terminal (tmux).
local env = require("env")
local fx = require("fixtures")
local input = require("async_inspect.tui.input")
local app_mod = require("async_inspect.tui.app")
local util = require("async_inspect.views.util")
local model = require("async_inspect.model")
local record = require("async_inspect.record")
local tmux = require("tmux")

local function line_with(frame, pattern)
  for i, l in ipairs(frame) do
    if util.strip(l):find(pattern) then return i, util.strip(l) end
  end
  return nil
end

describe("tui.input", function()
  it("decodes arrows, keys and characters", function()
    assert.same({ "up", "down", "right", "left" }, (input.decode("\27[A\27[B\27[C\27[D")))
    assert.same({ "up", "home", "end" }, (input.decode("\27OA\27OH\27OF")))
    assert.same({ "pgup", "pgdn", "delete", "home", "end" },
      (input.decode("\27[5~\27[6~\27[3~\27[1~\27[4~")))
    assert.same({ "up" }, (input.decode("\27[1;5A")))
    assert.same({ "backtab" }, (input.decode("\27[Z")))
    assert.same({ "enter", "tab", "backspace", "backspace", "space" },
      (input.decode("\r\t\127\8 ")))
    assert.same({ "enter" }, (input.decode("\r\n")))
    assert.same({ "q", "/", "?", "1", "G", "é" }, (input.decode("q/?1Gé")))
    assert.same({ "ctrl-c", "ctrl-l", "ctrl-u" }, (input.decode("\3\12\21")))
  end)

  it("takes a lone escape at the end of a read as the Escape key", function()
    assert.same({ "esc" }, (input.decode("\27")))
    assert.same({ "j", "esc" }, (input.decode("j\27")))
    assert.same({ "esc", "x" }, (input.decode("\27x")))
  end)

  it("keeps an incomplete sequence for the next read", function()
    local keys, rest = input.decode("a\27[")
    assert.same({ "a" }, keys)
    assert.equal("\27[", rest)
    local d = input.decoder()
    assert.same({}, d.feed("\27[1;"))
    assert.same({ "right" }, d.feed("5C"))
    assert.same({}, d.feed("\195"))
    assert.same({ "é" }, d.feed("\169"))
    d.feed("\27O")
    assert.same({ "esc", "O" }, d.flush())  -- escape, then the key typed after it
  end)

  it("ignores mouse reports and unknown sequences", function()
    assert.same({ "q" }, (input.decode("\27[<0;10;5Mq")))
    assert.same({ "x" }, (input.decode("\27[99zx")))
  end)

  it("tells printable keys from the others", function()
    assert.is_true(input.printable("a"))
    assert.is_true(input.printable("é"))
    assert.is_true(input.printable("space"))
    assert.is_false(input.printable("up"))
    assert.is_false(input.printable("ctrl-c"))
    assert.has_error(function() input.decode(nil) end,
      "bad argument #1 to 'decode' (string expected, got nil)")
  end)
end)

describe("tui.app", function()
  local function new(extra)
    local snap = fx.snapshot()
    local calls = 0
    local opts = { source = function()
      calls = calls + 1
      return snap
    end }
    for k, v in pairs(extra or {}) do opts[k] = v end
    local app = app_mod.new(opts)
    app:refresh()
    return app, function() return calls end, snap
  end

  local function keys(app, ...)
    for _, k in ipairs({ ... }) do app:key(k) end
    return app:frame(80, 24)
  end

  it("starts on the task list with a header and a footer", function()
    local app = new()
    local frame = app:frame(80, 24)
    assert.equal(24, #frame)
    assert.truthy(frame[1]:find("[1 Tasks] 2 Detail 3 Timeline 4 Tree 5 Resources 6 Warnings(2)",
      1, true))
    assert.truthy(frame[1]:find("LIVE 0.100s", 1, true))
    assert.truthy(frame[24]:find("q quit", 1, true))
    assert.truthy(line_with(frame, "^> SUSP +1 main loop"))
  end)

  it("moves the selection with arrows and j/k", function()
    local app = new()
    local frame = keys(app, "j", "down")
    assert.truthy(line_with(frame, "^> DONE +3 fetcher"))
    frame = keys(app, "k")
    assert.truthy(line_with(frame, "^> SUSP +2 worker 1"))
    frame = keys(app, "end")
    assert.truthy(line_with(frame, "^> DONE +5 load config"))
    frame = keys(app, "home")
    assert.truthy(line_with(frame, "^> SUSP +1 main loop"))
  end)

  it("changes the sort column with left/right and inverts with i", function()
    local app = new()
    local frame = keys(app, "right")
    assert.truthy(line_with(frame, "Name▲"))
    local first = line_with(frame, "^[> ] %u%u%u+ +%d")
    assert.truthy(frame[first]:find("fetcher", 1, true))
    frame = keys(app, "i")
    assert.truthy(line_with(frame, "Name▼"))
    assert.truthy(frame[first]:find("worker 2", 1, true))
    frame = keys(app, "left", "left")
    assert.truthy(line_with(frame, "State▼"))
  end)

  it("filters as the pattern is typed, applies on enter, cancels on esc", function()
    local app = new()
    local frame = keys(app, "/", "w", "o", "r")
    assert.truthy(frame[24]:find("/wor", 1, true))
    assert.truthy(line_with(frame, "filter 'wor': 2 shown"))
    frame = keys(app, "k", "e", "r", "space", "1", "x", "backspace", "enter")
    assert.equal("worker 1", app.filter)
    assert.truthy(line_with(frame, "filter 'worker 1': 1 shown"))
    frame = keys(app, "/", "x", "esc")
    assert.equal("worker 1", app.filter)
    assert.truthy(line_with(frame, "filter 'worker 1': 1 shown"))
    frame = keys(app, "esc")
    assert.is_nil(app.filter)
    assert.truthy(line_with(frame, "^5 tasks"))
  end)

  it("opens the detail of the selected task and goes back with esc", function()
    local app = new()
    local frame = keys(app, "j", "enter")
    assert.equal("detail", app.view)
    assert.truthy(line_with(frame, "^Task #2 worker 1"))
    assert.truthy(frame[1]:find("[2 Detail]", 1, true))
    frame = keys(app, "down", "down")
    assert.equal(2, app.offsets.detail)
    assert.falsy(line_with(frame, "^Task #2 worker 1"))  -- scrolled past the title
    frame = keys(app, "esc")
    assert.equal("tasks", app.view)
    assert.truthy(line_with(frame, "^> SUSP +2 worker 1"))
  end)

  it("switches views with tab, shift-tab and digits", function()
    local app = new()
    keys(app, "tab")
    assert.equal("detail", app.view)
    keys(app, "tab", "tab")
    assert.equal("tree", app.view)
    keys(app, "backtab")
    assert.equal("timeline", app.view)
    local frame = keys(app, "5")
    assert.truthy(line_with(frame, "^DEADLOCK mutex db"))
    frame = keys(app, "6")
    assert.truthy(line_with(frame, "^ERROR unjoined_failure"))
    frame = keys(app, "4")
    assert.truthy(line_with(frame, "├─ SUSP #2 worker 1"))
    frame = keys(app, "3")
    assert.truthy(line_with(frame, "^#1 main loop"))
    frame = keys(app, "1")
    assert.equal("tasks", app.view)
    assert.truthy(line_with(frame, "^5 tasks"))
  end)

  it("zooms and scrolls the timeline", function()
    local app = new()
    keys(app, "3", "+")
    assert.equal(50000000, app.tl.span)
    assert.is_nil(app.tl.right)  -- still following the end
    keys(app, "left")
    assert.equal(100000000 - 12500000, app.tl.right)
    keys(app, "+")  -- away from the end: around the middle of the window
    assert.equal(25000000, app.tl.span)
    assert.equal(100000000 - 12500000 - 12500000, app.tl.right)
    local frame = app:frame(80, 24)
    assert.truthy(line_with(frame, "window"))
    keys(app, "-", "-", "-")
    assert.is_nil(app.tl.span)
    keys(app, "+", "0")
    assert.is_nil(app.tl.span)
  end)

  it("shows the help and closes it with any key", function()
    local app = new()
    local frame = keys(app, "?")
    assert.truthy(line_with(frame, "dashboard: keys"))
    frame = keys(app, "x")
    assert.is_false(app.help)
    assert.truthy(line_with(frame, "^5 tasks"))
  end)

  it("pauses and resumes the updates", function()
    local app, calls = new()
    local before = calls()
    app:key("space")
    assert.is_true(app.paused)
    local paused_calls = calls()
    assert.equal(before + 1, paused_calls)  -- one last snapshot, with events
    app:refresh()
    app:refresh()
    assert.equal(paused_calls, calls())
    assert.truthy(app:frame(80, 24)[1]:find("PAUSED", 1, true))
    app:key("space")
    app:refresh()
    assert.equal(paused_calls + 1, calls())
  end)

  it("quits on q and asks for an interrupt on ctrl-c", function()
    local app = new()
    app:key("q")
    assert.is_true(app.quit)
    local other = new()
    other:key("ctrl-c")
    assert.is_true(other.interrupt)
  end)

  it("asks the source for the events only where a view needs them", function()
    local needs = {}
    local app = app_mod.new({ source = function(need)
      needs[#needs + 1] = need.events
      return fx.snapshot()
    end })
    app:refresh()
    app:key("3")
    app:refresh()
    assert.same({ false, true, true }, needs)
  end)

  it("adds the details the source gives for the task shown", function()
    local app = new({ source = {
      snapshot = function() return fx.snapshot() end,
      details = function(id)
        return { traceback_now = "stack traceback:\n\tdeep.lua:7: in function 'x" .. id .. "'" }
      end,
    } })
    local frame = keys(app, "j", "enter")
    assert.truthy(line_with(frame, "deep%.lua:7: in function 'x2'"))
  end)

  it("keeps the last snapshot and says so when the source fails", function()
    local n = 0
    local app = app_mod.new({ source = function()
      n = n + 1
      if n > 1 then error("gone") end
      return fx.snapshot()
    end })
    app:refresh()
    app:refresh()
    local frame = app:frame(80, 24)
    assert.truthy(frame[24]:find("snapshot failed", 1, true))
    assert.truthy(line_with(frame, "main loop"))
  end)

  it("moves a replay cursor", function()
    local h = model.history()
    for _, e in ipairs(fx.events()) do
      local msg = { type = "event" }
      for k, v in pairs(e) do msg[k] = v end
      h:add(msg)
    end
    local src = record.source(h)
    local app = app_mod.new({ source = src })
    assert.equal("replay", app.mode)
    app:refresh()
    local frame = app:frame(80, 24)
    assert.truthy(frame[1]:find("REPLAY 0.000s/0.062s", 1, true))
    assert.truthy(frame[24]:find("event 1/21", 1, true))
    frame = keys(app, ".", ".")
    assert.truthy(frame[24]:find("event 3/21", 1, true))
    frame = keys(app, "G")
    assert.truthy(frame[1]:find("REPLAY 0.062s/0.062s", 1, true))
    assert.truthy(line_with(frame, "^5 tasks"))
    frame = keys(app, ",")
    assert.truthy(frame[24]:find("event 20/21", 1, true))
    frame = keys(app, "g")
    assert.truthy(line_with(frame, "^1 tasks"))
    keys(app, "]", "space")
    assert.is_true(app.playing)
    assert.equal(2, app.speed)
    app:tick(10)
    app:refresh()
    assert.equal(20000000, src.cursor:time())
    app:tick(1000)
    assert.is_false(app.playing)  -- stopped at the end
    assert.equal(62000000, src.cursor:time())
  end)

  it("checks its arguments", function()
    assert.has_error(function() app_mod.new({}) end,
      "bad argument #1 to 'new' (source must be a function or a table with snapshot)")
    local app = new()
    assert.has_error(function() app:key(1) end,
      "bad argument #1 to 'key' (string expected, got number)")
    assert.has_error(function() app:frame(80) end)
  end)
end)

describe("tui.start", function()
  it("refuses to start without a terminal", function()
    local uv = require("luv")
    if uv.guess_handle(0) == "tty" and uv.guess_handle(1) == "tty" then
      return pending("run from a terminal: covered by the tmux tests")
    end
    local tui = require("async_inspect.tui")
    assert.has_error(function() tui.start({ source = function() return fx.snapshot() end }) end,
      "async_inspect.tui: the dashboard needs a terminal (standard input and output are not "
        .. "both a TTY)")
    assert.has_error(function() tui.start(5) end,
      "bad argument #1 to 'start' (table expected, got number)")
    assert.has_error(function() tui.start({ interval = 0 }) end,
      "bad argument #1 to 'start' (interval must be a positive number)")
    local remote = require("async_inspect.remote")
    local fake = require("fake_inspector").new()
    local srv = remote.serve({ inspector = fake })
    assert.has_error(function() remote.console("127.0.0.1", srv.port) end,
      "async_inspect.tui: the dashboard needs a terminal (standard input and output are not "
        .. "both a TTY)")
    srv:close()
  end)

  it("gives a live source over the inspector's snapshots and events", function()
    local tui = require("async_inspect.tui")
    local fake = require("fake_inspector").new()
    local a = fake.spawn("a", nil, "x.lua:1")
    fake.advance(5) fake.resume(a)
    fake.advance(5) fake.yield(a, "x.lua:2", "nap")
    local src = tui.live_source(fake, { max_events = 2 })
    assert.equal("live", src.mode)
    local snap = src.snapshot({ events = false })
    assert.equal("a", snap.tasks[1].name)
    assert.is_nil(snap.events)
    snap = src.snapshot({ events = true })
    assert.same({ "resume", "yield" }, { snap.events[1].kind, snap.events[2].kind })
    fake.advance(5) fake.resume(a)
    snap = src.snapshot({ events = true })
    assert.same({ 2, 4 }, { #snap.events, snap.events[2].seq })  -- the newest two
    assert.same({}, src.details(a))  -- the fake has no where/locals
    assert.has_error(function() tui.live_source(5) end,
      "bad argument #1 to 'live_source' (table expected, got number)")
  end)
end)

describe("dashboard in a real terminal", function()
  local have_tmux = tmux.available()
  local t

  after_each(function()
    if t then t:kill() end
    t = nil
  end)

  local function restored(term)
    local out = term:stty()
    assert.truthy(out, "stty ran after the program")
    assert.truthy(out:find("%f[%w-]icanon"), "icanon is back")
    assert.falsy(out:find("%-icanon"), "icanon is back")
    assert.truthy(out:find("%f[%w-]echo%f[^%w]"), "echo is back")
    assert.falsy(out:find("%-echo%f[^%w]"), "echo is back")
  end

  it("navigates, sorts, filters, switches views, follows resizes and restores on q", function()
    if not have_tmux then return pending("tmux is not installed") end
    t = tmux.start(env.ROOT .. "/spec/helpers/dash_fixture.lua")
    assert.truthy(t:wait("main loop"), "the dashboard shows the tasks")
    local s = t:screen()
    assert.truthy(s:find("[1 Tasks]", 1, true) or s:find(" 1 Tasks ", 1, true))
    t:keys("j")
    assert.truthy(t:wait(function(x) return x:find("\n> SUSP +2 worker 1") end))
    t:keys("Right")
    assert.truthy(t:wait("Name▲"))
    t:keys("i")
    s = t:wait("Name▼")
    assert.truthy(s)
    local rows = {}
    for line in s:gmatch("[^\n]+") do
      local name = line:match("^[> ] %u+ +%d+ (%S+ ?%S*)")
      if name then rows[#rows + 1] = name end
    end
    assert.same("worker 2", rows[1]:match("^(worker 2)"))
    t:keys("/")
    t:type("worker 1")
    t:keys("Enter")
    assert.truthy(t:wait("filter 'worker 1': 1 shown"))
    t:keys("Enter")
    assert.truthy(t:wait("Task #2 worker 1"), "detail of the filtered task")
    assert.truthy(t:wait("suspended at worker.lua:40 in flush"))
    t:keys("Escape")
    assert.truthy(t:wait("filter 'worker 1': 1 shown"), "back to the list")
    t:keys("Escape")
    assert.truthy(t:wait(function(x) return x:find("\n5 tasks, 2 suspended") end), "no filter")
    t:keys("4")
    assert.truthy(t:wait("├─ SUSP #2 worker 1"))
    t:keys("5")
    assert.truthy(t:wait("DEADLOCK mutex db"))
    t:keys("6")
    assert.truthy(t:wait("ERROR unjoined_failure"))
    t:keys("3")
    assert.truthy(t:wait("legend:"))
    t:keys("?")
    assert.truthy(t:wait("dashboard: keys"))
    t:keys("x", "1")
    assert.truthy(t:wait("main loop"))
    t:resize(100, 30)
    assert.truthy(t:wait(function(x)
      local first = x:match("^[^\n]*")
      return #first > 85 and first:find("LIVE")
    end), "the header follows the new width")
    assert.equal(30, #t:lines() - 1)
    t:keys("q")
    s = t:wait("SHELL-BACK exit=0")
    assert.truthy(s, "the program ended")
    assert.truthy(s:find("DASHBOARD QUIT", 1, true))
    assert.falsy(s:find("1 Tasks", 1, true), "the alternate screen is gone")
    assert.truthy(t:wait(function() return t:stty() ~= nil end))
    restored(t)
  end)

  it("draws only ASCII when asked", function()
    if not have_tmux then return pending("tmux is not installed") end
    t = tmux.start(env.ROOT .. "/spec/helpers/dash_fixture.lua", { args = "ascii" })
    t:keys("4")
    local s = t:wait("|- SUSP #2 worker 1")
    assert.truthy(s)
    assert.is_nil(s:find("[\128-\255]"))
    t:keys("q")
    assert.truthy(t:wait("SHELL-BACK exit=0"))
  end)

  it("restores the terminal when the program dies in a luv callback", function()
    if not have_tmux then return pending("tmux is not installed") end
    t = tmux.start(env.ROOT .. "/spec/helpers/dash_fixture.lua", { args = "crash" })
    local s = t:wait("SHELL-BACK exit=255", 8000)
    assert.truthy(s, "luv exits with 255")
    assert.falsy(s:find("1 Tasks", 1, true))
    assert.truthy(t:wait(function() return t:stty() ~= nil end))
    restored(t)
  end)

  it("restores the terminal on SIGTERM and ends the program by that signal", function()
    if not have_tmux then return pending("tmux is not installed") end
    local pidfile = env.tmpname(".pid")
    t = tmux.start(env.ROOT .. "/spec/helpers/dash_fixture.lua", { args = "pidfile " .. pidfile })
    assert.truthy(t:wait("main loop"))
    local pid = env.read(pidfile):match("%d+")
    os.remove(pidfile)
    os.execute("kill -TERM " .. pid)
    local s = t:wait("SHELL-BACK exit=143")
    assert.truthy(s, "killed by SIGTERM")
    assert.falsy(s:find("1 Tasks", 1, true))
    assert.truthy(t:wait(function() return t:stty() ~= nil end))
    restored(t)
  end)

  it("treats ctrl-c as the terminal would: restore, then SIGINT", function()
    if not have_tmux then return pending("tmux is not installed") end
    t = tmux.start(env.ROOT .. "/spec/helpers/dash_fixture.lua")
    assert.truthy(t:wait("main loop"))
    t:keys("C-c")
    assert.truthy(t:wait("SHELL-BACK exit=130"), "ended by SIGINT")
    assert.truthy(t:wait(function() return t:stty() ~= nil end))
    restored(t)
  end)

  it("replays a recording with a time cursor", function()
    if not have_tmux then return pending("tmux is not installed") end
    local path = env.tmpname(".aiv")
    local fake = require("fake_inspector").new()
    local rec = record.record(path, { inspector = fake })
    local ids = {}
    for i = 1, 4 do
      fake.advance(1000000)
      ids[i] = fake.spawn("job-" .. i, nil, "r.lua:" .. i)
    end
    for i = 1, 4 do
      fake.advance(1000000) fake.resume(ids[i])
      fake.advance(1000000) fake.yield(ids[i], "r.lua:9", "wait")
    end
    fake.advance(1000000) fake.resume(ids[4])
    fake.advance(1000000) fake.complete(ids[4])
    rec:stop()
    t = tmux.start(env.ROOT .. "/spec/helpers/dash_replay.lua", { args = tmux.quote(path) })
    -- the recording starts with the snapshot taken when recording began (no task yet)
    assert.truthy(t:wait("REPLAY 0.000s/0.014s"))
    assert.truthy(t:wait("event 0/14"))
    assert.truthy(t:wait("0 tasks"))
    t:keys("G")
    assert.truthy(t:wait("4 tasks, 3 suspended, 1 completed"))
    t:keys(",")
    assert.truthy(t:wait("event 13/14"))
    assert.truthy(t:wait("4 tasks, 1 running, 3 suspended"))
    t:keys("g", ".", ".")
    assert.truthy(t:wait("event 2/14"))
    assert.truthy(t:wait("2 tasks, 2 pending"))
    t:keys("q")
    assert.truthy(t:wait("REPLAY QUIT"))
    assert.truthy(t:wait("SHELL-BACK exit=0"))
    os.remove(path)
  end)

  it("shows a remote program in the console", function()
    if not have_tmux then return pending("tmux is not installed") end
    local uv = require("luv")
    local out, exited = "", false
    local stdout = uv.new_pipe(false)
    local handle = uv.spawn("lua5.4", {
      args = { env.ROOT .. "/spec/helpers/remote_child.lua", "steady", "-" },
      env = env.child_env(), stdio = { nil, stdout, 2 },
    }, function() exited = true end)
    stdout:read_start(function(_, data) if data then out = out .. data end end)
    env.run_until(function() return out:match("PORT (%d+)") end, 5000)
    local port = out:match("PORT (%d+)")
    t = tmux.start(env.ROOT .. "/spec/helpers/dash_console.lua", { args = port })
    local s = t:wait("gamma")
    assert.truthy(s, "the remote tasks are shown")
    assert.truthy(s:find("REMOTE", 1, true))
    assert.truthy(s:find("remote 127.0.0.1:" .. port, 1, true))
    assert.truthy(s:find("alpha", 1, true) and s:find("beta", 1, true))
    t:keys("q")
    assert.truthy(t:wait("CONSOLE QUIT"))
    assert.truthy(t:wait("SHELL-BACK exit=0"))
    uv.process_kill(handle, "sigterm")
    env.run_until(function() return exited end, 3000)
    stdout:close()
    handle:close()
    uv.run("nowait")
  end)

  it("shows the live program with the C core", function()
    if not have_tmux then return pending("tmux is not installed") end
    if not env.core_available() then return pending("build/async_inspect/core.so is not built") end
    t = tmux.start(env.ROOT .. "/spec/helpers/dash_live.lua")
    local s = t:wait("ticker-slow")
    assert.truthy(s, "the live tasks are shown")
    assert.truthy(s:find("ticker-fast", 1, true))
    assert.truthy(s:find("one-shot", 1, true))
    assert.truthy(s:find("LIVE", 1, true))
    t:keys("/")
    t:type("fast")
    t:keys("Enter", "Enter")
    assert.truthy(t:wait("Task #1 ticker-fast"))
    assert.truthy(t:wait("await nap"), "the await point")
    assert.truthy(t:wait("traceback:"), "the traceback of the suspended coroutine")
    assert.truthy(t:wait("local naps = "), "its locals")
    t:keys("PageDown")
    assert.truthy(t:wait(function(x) return x:match("Resume times %((%d+)%)") end))
    assert.truthy(t:wait("[nap]"), "its await points")
    t:keys("q")
    assert.truthy(t:wait("DASHBOARD QUIT"))
    assert.truthy(t:wait("SHELL-BACK exit=0"))
    assert.truthy(t:wait(function() return t:stty() ~= nil end))
    restored(t)
  end)
end)
