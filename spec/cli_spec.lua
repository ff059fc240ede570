-- The async-inspect command, run for real in child processes: a script's arg table,
-- output and exit status are kept; at exit the report names failed and stuck tasks with
-- their source lines, or says in one line that all is well; plain luv programs are
-- diagnosed too; every option, the other commands and the usage errors.
local process = require("spec.support.process")
local markers = require("spec.support.markers")
local cjson = require("cjson")
local cli = require("async_inspect.cli")

local ROOT = process.ROOT
local BIN = ROOT .. "/bin/async-inspect"

local dir

local function script(name, text)
  return process.write(dir .. "/" .. name, text)
end

local function command(args, opts)
  opts = opts or {}
  local argv = { BIN }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return process.run(argv, { cwd = dir, env = opts.env, timeout = opts.timeout, stdin = opts.stdin })
end

local function plain_lua(args)
  local argv = { "lua5.4" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return process.run(argv, { cwd = dir })
end

local line_of = markers.line_in

-- a value that must be there (luassert's assert returns more than its argument)
local function must(v, what)
  if not v then error((what or "value") .. " missing", 2) end
  return v
end

local function has(haystack, needle)
  return haystack:find(needle, 1, true) ~= nil
end

local function assert_has(haystack, needle)
  assert(has(haystack, needle), ("expected to find %q in:\n%s"):format(needle, haystack))
end

local function lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

setup(function()
  dir = process.tmpdir()
end)

teardown(function()
  if dir then process.rmdir(dir) end
end)

describe("async-inspect (parsing, in process)", function()
  it("parses run with options, the script and its arguments", function()
    local cmd = cli.parse({ "run", "--dump", "--chrome", "t.json", "--serve=7001", "app.lua", "-x", "--dump" })
    assert.same({ dump = true, chrome = "t.json", serve = { host = "127.0.0.1", port = 7001 } }, cmd.options)
    assert.equal("app.lua", cmd.script)
    assert.equal(6, cmd.script_index)
    assert.same({ "-x", "--dump" }, cmd.args)
  end)

  it("takes what follows -- as the script", function()
    local cmd = cli.parse({ "run", "--quiet", "--", "-odd.lua", "a" })
    assert.equal("-odd.lua", cmd.script)
    assert.same({ "a" }, cmd.args)
  end)

  it("returns a one-line error for wrong usage", function()
    local cases = {
      { {}, "no command given" },
      { { "frobnicate" }, "unknown command 'frobnicate'" },
      { { "--frob" }, "unknown option '--frob'" },
      { { "run" }, "run: no script given" },
      { { "run", "--bogus", "a.lua" }, "unknown option '--bogus'" },
      { { "run", "--chrome" }, "option '--chrome' needs a value" },
      { { "run", "--serve", "http", "a.lua" }, "--serve: 'http' is not HOST:PORT or PORT" },
      { { "replay" }, "replay: no recording given" },
      { { "replay", "a", "b" }, "replay: unexpected argument 'b'" },
      { { "console", "nowhere" }, "console: 'nowhere' is not HOST:PORT or PORT" },
      { { "console", "h:70000" }, "is not HOST:PORT or PORT" },
      { { "export", "r.aiv" }, "export: --to FORMAT is required" },
      { { "export", "--to", "json" }, "export: no recording given" },
      { { "export", "r.aiv", "--to", "pdf" }, "unknown format 'pdf'" },
      { { "export", "r.aiv", "--to", "csv", "-o", "-" }, "cannot go to stdout" },
    }
    for _, c in ipairs(cases) do
      local cmd, err = cli.parse(c[1])
      assert.is_nil(cmd, table.concat(c[1], " "))
      assert.is_string(err)
      assert.is_nil(err:find("\n"), "not one line: " .. err)
      assert_has(err, c[2])
    end
  end)

  it("parses the other commands", function()
    assert.same({ name = "help" }, cli.parse({ "--help" }))
    assert.same({ name = "version" }, cli.parse({ "--version" }))
    assert.same({ name = "replay", file = "r.aiv" }, cli.parse({ "replay", "r.aiv" }))
    assert.same({ name = "console", host = "::1", port = 7001 }, cli.parse({ "console", "[::1]:7001" }))
    assert.same({ name = "console", host = "127.0.0.1", port = 9 }, cli.parse({ "console", "9" }))
    assert.same({ name = "export", recording = "r.aiv", format = "csv", output = "out" },
      cli.parse({ "export", "--to=csv", "r.aiv", "-o", "out" }))
  end)

  it("shifts the launcher's arg table so the script is at 0", function()
    local argv = { [-1] = "lua5.4", [0] = "bin/async-inspect", "run", "--dump", "app.lua", "a", "b" }
    assert.same({ [-4] = "lua5.4", [-3] = "bin/async-inspect", [-2] = "run", [-1] = "--dump",
      [0] = "app.lua", "a", "b" }, cli.script_arg(argv, 3))
    assert.has_error(function() cli.script_arg(argv, 9) end)
  end)

  it("names the export files", function()
    assert.same({ "run.trace.json" }, cli.export_paths("run.aiv", "chrome"))
    assert.same({ "dir/run.html" }, cli.export_paths("dir/run.aiv", "html"))
    assert.same({ "run-tasks.csv", "run-events.csv" }, cli.export_paths("run.aiv", "csv"))
    assert.same({ "out-tasks.csv", "out-events.csv" }, cli.export_paths("run.aiv", "csv", "out.csv"))
    assert.same({ "-" }, cli.export_paths("run.aiv", "json", "-"))
    assert.has_error(function() cli.export_paths("run.aiv", "pdf") end)
  end)

  it("gathers failed tasks with the findings about them, and unfinished tasks", function()
    local snap = { t = 5e9, stats = { tasks = 4, long_polls = 0 }, tasks = {
      { id = 1, name = "ok", state = "completed" },
      { id = 2, name = "fetch", state = "failed", error = "app.lua:7: refused", created_at = "app.lua:3",
        traceback = "stack traceback:\n\t[C]: in function 'error'\n\tapp.lua:7: in function <app.lua:3>" },
      { id = 3, name = "idle", state = "suspended", where = "app.lua:20", last_change = 1e9 },
      { id = 4, name = "locked", state = "suspended", where = "app.lua:30", last_change = 1e9 },
    } }
    local findings = {
      { kind = "unjoined_failure", severity = "warn", task = 2, message = "nobody read this error" },
      { kind = "deadlock", severity = "error", task = 4, loc = "app.lua:30", message = "waits for itself" },
      { kind = "churn", severity = "info", message = "many short tasks" },
    }
    local items, infos = cli.gather(snap, findings)
    assert.equal(1, infos)
    assert.equal(3, #items)
    assert.same({ "failed", "deadlock", "unfinished" }, { items[1].kind, items[2].kind, items[3].kind })
    assert.equal("app.lua:7", items[1].loc)
    assert.equal("nobody read this error", items[1].notes[1].message)
    assert.equal(3, items[3].task)
    assert_has(items[3].message, "left suspended at app.lua:20 when the program ended (for 4.00s)")
    local text = table.concat(cli.report_lines(snap, items, {}), "\n")
    assert_has(text, "3 findings need attention (2 errors, 1 warning)")
    assert_has(text, "ERROR failed  task #2 fetch  at app.lua:7")
    assert_has(text, "        app.lua:7: in function <app.lua:3>")
    assert_has(text, "    WARN unjoined_failure: nobody read this error")
    assert_has(text, "ERROR deadlock  task #4  at app.lua:30")
  end)

  it("tells a task collected before it ever ran from one collected while suspended", function()
    local snap = { t = 5e9, stats = { tasks = 3 }, tasks = {
      { id = 1, name = "gen", state = "dropped", created_at = "app.lua:4", resumes = 0 },
      { id = 2, name = "gen", state = "dropped", created_at = "app.lua:4", resumes = 0 },
      { id = 3, name = "w", state = "dropped", created_at = "app.lua:9", where = "app.lua:11", resumes = 2 },
    } }
    local items = cli.gather(snap, {})
    assert.equal(2, #items)
    assert_has(items[1].message, "2 tasks were created at app.lua:4 and garbage-collected before they ever ran")
    assert_has(items[2].message, "left suspended at app.lua:11 and garbage-collected")
  end)

  it("says all is well in one line, and nothing when quiet", function()
    local snap = { t = 2e6, stats = { tasks = 3, completed = 3, events = 15, uptime = 2e6 }, tasks = {} }
    assert.same({ "async-inspect: all is well: 3 tasks (3 completed), 15 events, 2.00ms" },
      cli.report_lines(snap, {}, {}))
    assert.same({}, cli.report_lines(snap, {}, { quiet = true }))
    assert_has(cli.all_well_line(snap, 0, 4), "no task needs attention (the program exited with status 4)")
  end)

  it("checks its arguments", function()
    assert.has_error(function() cli.parse("run") end, "bad argument #1 to 'parse' (table expected, got string)")
    assert.has_error(function() cli.gather({}, {}) end)
    assert.has_error(function() cli.main(nil) end)
    assert.has_error(function() cli.run({ name = "replay" }, {}) end)
    assert.has_error(function() cli.report_lines({}, "items") end,
      "bad argument #2 to 'report_lines' (table expected, got string)")
    assert.has_error(function() cli.all_well_line(nil) end)
    assert.has_error(function() cli.parse_address(7001) end)
    assert.has_error(function() cli.export_paths("r.aiv", "json", 1) end)
  end)
end)

describe("async-inspect run", function()
  local ARGS = [[
io.write("arg0=", tostring(arg[0]), " n=", #arg, " varargs=", select("#", ...), "\n")
for i = 1, #arg do io.write(i, "=", arg[i], " ", tostring(select(i, ...)), "\n") end
io.write("neg1=", tostring(arg[-1]), "\n")
]]

  it("keeps the script's arg table, its varargs and its output", function()
    script("args.lua", ARGS)
    local res = command({ "run", "args.lua", "one", "two words", "--dump" })
    local plain = plain_lua({ "args.lua", "one", "two words", "--dump" })
    assert.equal(0, res.code, process.describe(res))
    -- everything but arg[0] and arg[-1] is the same as under lua5.4
    assert.equal(plain.stdout:gsub("arg0=[^ ]*", ""):gsub("neg1=.*", ""),
      res.stdout:gsub("arg0=[^ ]*", ""):gsub("neg1=.*", ""))
    assert_has(res.stdout, "arg0=args.lua n=3 varargs=3\n")
    assert_has(res.stdout, "2=two words two words\n")
    assert_has(res.stdout, "3=--dump --dump\n")
    assert_has(res.stdout, "neg1=run\n")
  end)

  it("puts the launcher and options at negative indices", function()
    script("neg.lua", "for i = -3, 0 do io.write(i, '=', tostring(arg[i]), '\\n') end")
    local res = command({ "run", "--quiet", "neg.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("-3=" .. BIN .. "\n-2=run\n-1=--quiet\n0=neg.lua\n", res.stdout)
  end)

  it("keeps stdout free of the report", function()
    script("clean.lua", [[
for i = 1, 3 do
  local co = coroutine.wrap(function(x) coroutine.yield(x * 2) end)
  print("value", co(i))
end
io.write("no newline at the end")
]])
    local res = command({ "run", "clean.lua" })
    assert.equal(plain_lua({ "clean.lua" }).stdout, res.stdout)
    assert.equal(0, res.code)
  end)

  it("says all is well in one line for a clean program", function()
    script("well.lua", [[
local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
local sum = 0
for _ = 1, 3 do sum = sum + gen() end
gen()
print(sum)
]])
    local res = command({ "run", "well.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("6\n", res.stdout)
    local err = lines(res.stderr)
    assert.equal(1, #err, res.stderr)
    assert.truthy(err[1]:match("^async%-inspect: all is well: 1 task %(1 completed%), 9 events, "), err[1])
  end)

  local EXITS = {
    { "os.exit(5)", 5 }, { "os.exit(false)", 1 }, { "os.exit(true)", 0 }, { "os.exit()", 0 },
    { "os.exit(3, true)", 3 }, { "return 7", 0 },
    { "coroutine.wrap(function() os.exit(4) end)()", 4 },
  }
  for _, case in ipairs(EXITS) do
    it("keeps the exit status of " .. case[1] .. " and still reports", function()
      script("exit.lua", "io.write('before ')\n" .. case[1] .. "\n")
      local res = command({ "run", "exit.lua" })
      assert.equal(case[2], res.code, process.describe(res))
      assert.equal(plain_lua({ "exit.lua" }).code, res.code)
      assert.equal("before ", res.stdout)
      assert_has(res.stderr, "async-inspect: ")
    end)
  end

  it("reports an error as lua5.4 does, with exit status 1", function()
    script("boom.lua", [[
local function parse(s)
  error("cannot parse " .. s)
end
print("starting")
parse("x")
]])
    local res = command({ "run", "boom.lua" })
    local plain = plain_lua({ "boom.lua" })
    assert.equal(1, res.code)
    assert.equal(plain.stdout, res.stdout)
    -- the same message and traceback, then the report
    assert.equal(plain.stderr, res.stderr:sub(1, #plain.stderr))
    assert_has(plain.stderr, "lua5.4: boom.lua:2: cannot parse x\nstack traceback:\n")
    assert_has(res.stderr:sub(#plain.stderr + 1), "(the program exited with status 1)")
  end)

  it("reports error objects as lua5.4 does", function()
    for _, body in ipairs({
      "error(setmetatable({}, { __tostring = function() return 'custom error' end }))",
      "error({ code = 1 })",
      "error(42)",
    }) do
      script("obj.lua", body .. "\n")
      local plain = plain_lua({ "obj.lua" })
      local res = command({ "run", "obj.lua" })
      assert.equal(1, res.code)
      assert.equal(plain.stderr, res.stderr:sub(1, #plain.stderr), body)
    end
  end)

  it("reports a syntax error as lua5.4 does", function()
    script("syntax.lua", "local x = = 1\n")
    local res = command({ "run", "syntax.lua" })
    assert.equal(1, res.code)
    assert.equal(plain_lua({ "syntax.lua" }).stderr, res.stderr)
  end)

  it("runs a script from standard input with -", function()
    local res = command({ "run", "-", "a" }, { stdin = "print(arg[0], arg[1], ...)" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("-\ta\ta\n", res.stdout)
  end)

  it("says clearly that a script is missing, with exit status 2", function()
    local res = command({ "run", "nosuch.lua" })
    assert.equal(2, res.code)
    assert.equal("async-inspect: cannot open script 'nosuch.lua': No such file or directory\n", res.stderr)
  end)

  local FAILED = [[
local function fetch(url)
  coroutine.yield()
  error("connection refused: " .. url)  -- FAIL
end
local co = coroutine.create(fetch)  -- CREATE
coroutine.resume(co, "http://example.invalid/")
coroutine.resume(co)  -- the result is dropped: nobody looks at the error
print("done")
]]

  it("prints a failed task with its error, source line and traceback", function()
    script("failed.lua", FAILED)
    local fail_line = line_of(FAILED, "-- FAIL")
    local res = command({ "run", "failed.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("done\n", res.stdout)
    assert_has(res.stderr, "Failed:       1")
    assert_has(res.stderr, "ERROR failed  task #1 failed.lua:1  at failed.lua:" .. fail_line)
    assert_has(res.stderr, "error: failed.lua:" .. fail_line .. ": connection refused: http://example.invalid/")
    assert_has(res.stderr, "stack traceback:")
    assert_has(res.stderr, "failed.lua:" .. fail_line .. ": in function <failed.lua:1>")
  end)

  local STUCK = [[
local inbox = {}
local function receive()
  inbox[#inbox + 1] = coroutine.running()
  return coroutine.yield()  -- WAIT
end
local worker = coroutine.create(function()
  local msg = receive()
  print("got", msg)
end)
coroutine.resume(worker)
print("main done")
]]

  it("prints a stuck task with where it waits and the dump", function()
    script("stuck.lua", STUCK)
    local wait_line = line_of(STUCK, "-- WAIT")
    local res = command({ "run", "stuck.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("main done\n", res.stdout)
    assert_has(res.stderr, "finding")
    assert_has(res.stderr, "task #1 stuck.lua:6")
    assert_has(res.stderr, "at stuck.lua:" .. wait_line)
    -- the dump: the suspended task's stack, down to the function that yields
    assert_has(res.stderr, "stuck.lua:" .. wait_line .. ": in ")
    assert_has(res.stderr, "stuck.lua:7: in function <stuck.lua:6>")
  end)

  it("prints findings only with --quiet, and nothing when all is well", function()
    script("failed.lua", FAILED)
    local res = command({ "run", "--quiet", "failed.lua" })
    assert.equal(0, res.code)
    assert_has(res.stderr, "ERROR failed")
    assert.is_false(has(res.stderr, "async_inspect summary"))
    script("well.lua", "coroutine.wrap(function() end)()")
    local quiet = command({ "run", "--quiet", "well.lua" })
    assert.equal(0, quiet.code)
    assert.equal("", quiet.stderr)
  end)

  it("diagnoses a plain luv program that never runs the loop itself", function()
    local PLAIN = [[
local uv = require "luv"
local function sleep(ms)
  local co = coroutine.running()
  local t = uv.new_timer()
  t:start(ms, 0, function() t:close(); coroutine.resume(co) end)
  coroutine.yield()
end
for i = 1, 3 do
  coroutine.wrap(function()
    sleep(5 * i)
    if i == 2 then error("worker 2 gave up") end  -- FAIL
    print("worker " .. i .. " done")
  end)()
end
print("script returns")
]]
    script("plain.lua", PLAIN)
    local res = command({ "run", "plain.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("script returns\nworker 1 done\nworker 3 done\n", res.stdout)
    assert_has(res.stderr, "Completed:    2")
    assert_has(res.stderr, "ERROR failed  task #2 plain.lua:9  at plain.lua:" .. line_of(PLAIN, "-- FAIL"))
    assert_has(res.stderr, "worker 2 gave up")
  end)

  it("lets luvit-style code require 'uv'", function()
    script("luvit_style.lua", "require('uv').new_timer():start(1, 0, function() print('fired') end)")
    local res = command({ "run", "luvit_style.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("fired\n", res.stdout)
  end)

  it("does not run the loop again when the script ran it", function()
    script("ran.lua", [[
local uv = require "luv"
local t = uv.new_timer()
t:start(1, 0, function() print("first") end)
uv.run()
t:start(1, 0, function() print("second") end)
uv.stop()
]])
    local res = command({ "run", "ran.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("first\n", res.stdout)
  end)
end)

describe("async-inspect run options", function()
  local WORK = [[
local co = coroutine.create(function(n)
  for i = 1, n do coroutine.yield(i) end
  return "finished"
end)
for _ = 1, 4 do coroutine.resume(co, 3) end
local bad = coroutine.create(function() error("bad things") end)
coroutine.resume(bad)
print("ok")
]]

  before_each(function()
    script("work.lua", WORK)
  end)

  it("--timeline prints the events", function()
    local res = command({ "run", "--timeline", "work.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert.equal("ok\n", res.stdout)
    for _, kind in ipairs({ "spawn", "resume", "yield", "complete", "fail" }) do assert_has(res.stderr, kind) end
    assert_has(res.stderr, "work.lua:2")
  end)

  it("--dump prints the live tasks", function()
    script("live.lua", "local co = coroutine.create(function() coroutine.yield() end)\ncoroutine.resume(co)\n")
    local res = command({ "run", "--dump", "live.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert_has(res.stderr, "async_inspect dump")
    assert_has(res.stderr, "1 live task")
    assert_has(res.stderr, "live.lua:1")
  end)

  it("--profile prints the profile report", function()
    local res = command({ "run", "--profile", "work.lua" })
    assert.equal(0, res.code, process.describe(res))
    assert_has(res.stderr, "Profile:")
    assert_has(res.stderr, "Latency percentiles")
  end)

  it("--chrome, --html, --folded and --json write their files", function()
    local res = command({ "run", "--chrome", "t.json", "--html", "r.html", "--folded", "f.txt",
      "--json", "j.json", "work.lua" })
    assert.equal(0, res.code, process.describe(res))
    local trace = cjson.decode(must(process.read(dir .. "/t.json")))
    assert.is_true(#trace.traceEvents > 0)
    local html = must(process.read(dir .. "/r.html"))
    assert.truthy(html:find("<html", 1, true))
    local folded = must(process.read(dir .. "/f.txt"))
    for line in folded:gmatch("[^\n]+") do assert.truthy(line:match("^.+ %d+$"), line) end
    assert_has(folded, "work.lua:1")
    local doc = cjson.decode(must(process.read(dir .. "/j.json")))
    assert.equal(2, #doc.tasks)
    for _, f in ipairs({ "t.json", "r.html", "f.txt", "j.json" }) do assert_has(res.stderr, "wrote " .. f) end
  end)

  it("--record writes a recording that export reads back", function()
    local res = command({ "run", "--record", "run.aiv", "work.lua" })
    assert.equal(0, res.code, process.describe(res))
    local first = must(process.read(dir .. "/run.aiv")):match("^[^\n]+")
    assert.equal("header", cjson.decode(first).type)
    local exp = command({ "export", "run.aiv", "--to", "json", "-o", "-" })
    assert.equal(0, exp.code, process.describe(exp))
    local doc = cjson.decode(exp.stdout)
    local states = {}
    for _, t in ipairs(doc.tasks) do states[#states + 1] = t.state end
    table.sort(states)
    assert.same({ "completed", "failed" }, states)
  end)

  it("--serve serves the inspector while the program runs", function()
    local uv = require("luv")
    local probe = uv.new_tcp()
    probe:bind("127.0.0.1", 0)
    local port = probe:getsockname().port
    probe:close()
    uv.run("nowait")
    script("client.lua", [[
local uv = require "luv"
local client = uv.new_tcp()
client:connect("127.0.0.1", tonumber(arg[1]), function(err)
  assert(not err, err)
  client:read_start(function(rerr, data)
    assert(not rerr, rerr)
    if data then
      print((data:match("[^\n]*")))
      client:close()
    end
  end)
end)
uv.run()
]])
    local res = command({ "run", "--serve", tostring(port), "client.lua", tostring(port) })
    assert.equal(0, res.code, process.describe(res))
    local hello = cjson.decode(res.stdout)
    assert.equal("hello", hello.type)
    assert_has(res.stderr, "serving on 127.0.0.1:" .. port)
  end)

  it("--tui says it needs a terminal when there is none", function()
    local res = command({ "run", "--tui", "work.lua" })
    assert.equal(2, res.code)
    assert_has(res.stderr, "--tui needs a terminal")
    assert.equal("", res.stdout)
  end)

  -- cli.main in a child where the module of --profile is missing or broken
  local function without_profile(how)
    script("never.lua", "print('the script ran')")
    return process.lua(([[
local cli = require "async_inspect.cli"
require "async_inspect"
if %q == "broken" then
  package.preload["async_inspect.profile"] = function() error("broken on purpose") end
else
  package.path, package.cpath = "", ""
end
os.exit(cli.main({ [0] = "async-inspect", "run", "--profile", "never.lua" }))
]]):format(how), { cwd = dir })
  end

  it("says which module an option needs when it is missing or broken, before the script runs", function()
    local missing = without_profile("missing")
    assert.equal(2, missing.code, process.describe(missing))
    assert.equal("", missing.stdout)
    assert_has(missing.stderr, "--profile is not available: module async_inspect.profile is not installed")
    local broken = without_profile("broken")
    assert.equal(2, broken.code, process.describe(broken))
    assert.equal("", broken.stdout)
    assert_has(broken.stderr, "--profile is not available: module async_inspect.profile failed to load")
    assert_has(broken.stderr, "broken on purpose")
  end)
end)

describe("async-inspect usage", function()
  it("--help prints the usage on stdout", function()
    local res = command({ "--help" })
    assert.equal(0, res.code)
    assert_has(res.stdout, "usage: async-inspect run [options] script.lua [args...]")
    for _, opt in ipairs({ "--timeline", "--dump", "--profile", "--chrome FILE", "--html FILE",
      "--folded FILE", "--json FILE", "--record FILE", "--tui", "--serve PORT", "--quiet" }) do
      assert_has(res.stdout, opt)
    end
    assert.equal("", res.stderr)
  end)

  it("--version prints the version", function()
    local res = command({ "--version" })
    assert.equal(0, res.code)
    assert.truthy(res.stdout:match("^async%-inspect %d+%.%d+%.%d+ %(Lua 5%.4%)\n$"), res.stdout)
  end)

  for _, args in ipairs({ {}, { "frobnicate" }, { "--frob" }, { "run" }, { "run", "--bogus", "x.lua" },
    { "run", "--html" }, { "export", "r.aiv" }, { "replay" }, { "console", "x" } }) do
    it("exits 2 with a one-line error and the usage for: " .. table.concat(args, " "), function()
      local res = command(args)
      assert.equal(2, res.code)
      assert.equal("", res.stdout)
      local err = lines(res.stderr)
      assert.truthy(err[1]:match("^async%-inspect: "), err[1])
      assert.truthy(err[2]:match("^usage: async%-inspect run"), res.stderr)
    end)
  end
end)

describe("async-inspect export, replay and console", function()
  setup(function()
    script("rec_work.lua", [[
local co = coroutine.create(function() coroutine.yield(); error("late failure") end)
coroutine.resume(co)
coroutine.wrap(function() end)()
coroutine.resume(co)
]])
    local res = command({ "run", "--quiet", "--record", "rec.aiv", "rec_work.lua" })
    assert(res.code == 0, process.describe(res))
  end)

  it("converts a recording to every format, next to it by default", function()
    for _, case in ipairs({ { "chrome", "rec.trace.json" }, { "html", "rec.html" }, { "json", "rec.json" },
      { "folded", "rec.folded" }, { "csv", "rec-tasks.csv" } }) do
      local res = command({ "export", "rec.aiv", "--to", case[1] })
      assert.equal(0, res.code, process.describe(res))
      assert_has(res.stderr, "wrote " .. case[2])
      assert.truthy(process.read(dir .. "/" .. case[2]), case[2])
    end
    local tasks_csv = must(process.read(dir .. "/rec-tasks.csv"))
    assert_has(tasks_csv, "late failure")
    assert.truthy(process.read(dir .. "/rec-events.csv"))
    local doc = cjson.decode(must(process.read(dir .. "/rec.json")))
    assert.equal(2, #doc.tasks)
    local trace = cjson.decode(must(process.read(dir .. "/rec.trace.json")))
    assert.is_true(#trace.traceEvents > 0)
  end)

  it("writes where -o says, or to stdout with -o -", function()
    local res = command({ "export", "rec.aiv", "--to", "folded", "-o", "out.folded" })
    assert.equal(0, res.code, process.describe(res))
    assert_has(must(process.read(dir .. "/out.folded")), "rec_work.lua:1")
    local out = command({ "export", "rec.aiv", "--to", "folded", "-o", "-" })
    assert.equal(0, out.code)
    assert.equal(process.read(dir .. "/out.folded"), out.stdout)
  end)

  it("says clearly when the recording is missing (2) or is not one (1)", function()
    local missing = command({ "export", "nope.aiv", "--to", "json" })
    assert.equal(2, missing.code)
    assert_has(missing.stderr, "cannot open recording 'nope.aiv'")
    local bad = command({ "export", "rec_work.lua", "--to", "json", "-o", "x.json" })
    assert.equal(1, bad.code)
    assert_has(bad.stderr, "async-inspect: ")
    local same = command({ "export", "rec.aiv", "--to", "json", "-o", "rec.aiv" })
    assert.equal(1, same.code)
    assert_has(same.stderr, "refusing to overwrite the recording")
  end)

  it("replay and console say they need a terminal when there is none", function()
    local replay = command({ "replay", "rec.aiv" })
    assert.equal(1, replay.code)
    assert_has(replay.stderr, "needs a terminal")
    local missing = command({ "replay", "nope.aiv" })
    assert.equal(2, missing.code)
    assert_has(missing.stderr, "cannot open recording 'nope.aiv'")
    local console = command({ "console", "127.0.0.1:1" })
    assert.equal(1, console.code)
    assert_has(console.stderr, "needs a terminal")
  end)
end)

-- The dashboard options in a real terminal (tmux), when tmux is installed.
local function have_tmux()
  return os.execute("command -v tmux >/dev/null 2>&1") == true
end

describe("async-inspect in a terminal", function()
  if not have_tmux() then return end
  local socket = "ai-cli-spec-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e6))

  local function tmux(args)
    local words = { "tmux", "-L", socket }
    for _, a in ipairs(args) do words[#words + 1] = process.quote(a) end
    local p = io.popen(table.concat(words, " ") .. " 2>/dev/null")
    local out = p:read("a")
    p:close()
    return out
  end

  local function wait_for(pred, seconds)
    local deadline = os.time() + seconds
    repeat
      local v = pred()
      if v then return v end
      os.execute("sleep 0.1")
    until os.time() > deadline
    return nil
  end

  -- run argv in a tmux pane; returns a handle with screen(), keys(k) and wait() -> exit status
  local function in_terminal(argv)
    local words = {}
    for i, a in ipairs(argv) do words[i] = process.quote(a) end
    local status_file = dir .. "/tmux-status"
    os.remove(status_file)
    local env = ("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s LANG=C.UTF-8"):format(
      process.quote(os.getenv("LUA_PATH_5_4") or (ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;;")),
      process.quote(os.getenv("LUA_CPATH_5_4") or (ROOT .. "/build/?.so;;")))
    local shell = ("cd %s && env %s %s 2>%s; echo $? > %s"):format(process.quote(dir), env,
      table.concat(words, " "), process.quote(dir .. "/tmux-stderr"), process.quote(status_file))
    tmux({ "new-session", "-d", "-x", "100", "-y", "30", shell })
    return {
      screen = function() return tmux({ "capture-pane", "-p" }) end,
      keys = function(k) tmux({ "send-keys", k }) end,
      wait = function()
        local code = wait_for(function()
          local s = process.read(status_file)
          return s and s:match("%d+")
        end, 20)
        return code and tonumber(code), process.read(dir .. "/tmux-stderr") or ""
      end,
    }
  end

  after_each(function()
    tmux({ "kill-server" })
  end)

  it("--tui shows the dashboard, which stays until q, then the report", function()
    script("tui.lua", "local co = coroutine.create(function() coroutine.yield() end)\ncoroutine.resume(co)\n")
    local term = in_terminal({ BIN, "run", "--tui", "tui.lua" })
    assert.truthy(wait_for(function() return term.screen():find("tui.lua:1", 1, true) end, 20),
      "the dashboard did not show the task:\n" .. term.screen())
    term.keys("q")
    local code, stderr = term.wait()
    assert.equal(0, code, stderr)
    assert_has(stderr, "left suspended at tui.lua:1")
  end)

  it("replay shows a recording in the dashboard until q", function()
    script("rec2.lua", "coroutine.wrap(function() end)()")
    local res = command({ "run", "--quiet", "--record", "rec2.aiv", "rec2.lua" })
    assert.equal(0, res.code, process.describe(res))
    local term = in_terminal({ BIN, "replay", "rec2.aiv" })
    assert.truthy(wait_for(function() return term.screen():find("Tasks", 1, true) end, 20),
      "the dashboard did not show:\n" .. term.screen())
    term.keys("q")
    local code, stderr = term.wait()
    assert.equal(0, code, stderr)
  end)
end)
