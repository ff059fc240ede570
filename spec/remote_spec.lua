-- The remote protocol: a server in a child process, clients in this one, on loopback.
local env = require("env")
local uv = require("luv")
local wire = require("async_inspect.wire")
local remote = require("async_inspect.remote")

-- Start spec/helpers/remote_child.lua and wait for the port it listens on.
local function start_child(mode, token)
  local child = { out = "", exited = false }
  local stdout = uv.new_pipe(false)
  local handle, pid = uv.spawn("lua5.4", {
    args = { env.ROOT .. "/spec/helpers/remote_child.lua", mode, token or "-" },
    env = env.child_env(),
    stdio = { nil, stdout, 2 },
  }, function(code)
    child.exited, child.code = true, code
  end)
  assert(handle, pid)
  child.handle, child.pid, child.stdout = handle, pid, stdout
  stdout:read_start(function(err, data)
    if data and not err then child.out = child.out .. data end
  end)
  assert(env.run_until(function() return child.out:match("PORT (%d+)") end, 5000),
    "the child did not start: " .. child.out)
  child.port = tonumber(child.out:match("PORT (%d+)"))
  function child.stop()
    if not child.exited then uv.process_kill(handle, "sigterm") end
    env.run_until(function() return child.exited end, 3000)
    stdout:close()
    handle:close()
    uv.run("nowait")
  end
  return child
end

-- A plain TCP client that collects the messages it receives.
local function client(port, opts)
  local c = { msgs = {}, closed = false, connected = false, tcp = uv.new_tcp() }
  local reader = wire.line_reader(64 * 1048576)
  c.tcp:connect("127.0.0.1", port, function(err)
    assert(not err, err)
    c.connected = true
    if opts and opts.no_read then return end
    c.tcp:read_start(function(rerr, data)
      if rerr or not data then
        c.closed = true
        return
      end
      for _, l in ipairs(reader(data)) do c.msgs[#c.msgs + 1] = wire.decode(l) end
    end)
  end)
  function c.send(msg) c.tcp:write(wire.encode(msg) .. "\n") end
  function c.raw(s) c.tcp:write(s) end
  -- wait for the first message (after index `from`) matching pred
  function c.wait(pred, timeout, from)
    local found
    env.run_until(function()
      for i = (from or 0) + 1, #c.msgs do
        if pred(c.msgs[i]) then
          found = c.msgs[i]
          return true
        end
      end
      return false
    end, timeout or 3000)
    return found
  end
  function c.close()
    if not c.tcp:is_closing() then c.tcp:close() end
    uv.run("nowait")
  end
  assert(env.run_until(function() return c.connected end, 3000), "could not connect")
  return c
end

local function of_type(ty, id)
  return function(m) return m.type == ty and (id == nil or m.id == id) end
end

describe("remote server", function()
  local child

  setup(function() child = start_child("steady") end)
  teardown(function() child.stop() end)

  it("greets with a versioned hello", function()
    local c = client(child.port)
    local hello = c.wait(of_type("hello"))
    assert.equal(1, hello.protocol)
    assert.equal("async_inspect", hello.server)
    assert.is_false(hello.auth)
    assert.equal(child.pid, hello.pid)
    assert.equal("number", type(hello.t))
    c.close()
  end)

  it("answers ping with pong and the server time", function()
    local c = client(child.port)
    c.send({ type = "ping", id = 7 })
    local pong = c.wait(of_type("pong", 7))
    assert.truthy(pong)
    assert.equal("integer", math.type(pong.t))
    c.close()
  end)

  it("sends snapshots, with a bounded number of events when asked", function()
    local c = client(child.port)
    c.send({ type = "snapshot", id = 1 })
    local msg = c.wait(of_type("snapshot", 1))
    local snap = msg.snapshot
    assert.equal("integer", math.type(msg.seq))
    assert.equal(msg.seq, snap.seq)
    assert.is_nil(snap.events)
    local names = {}
    for _, t in ipairs(snap.tasks) do names[t.id] = t.name end
    assert.same({ "alpha", "beta", "gamma" }, { names[1], names[2], names[3] })
    c.send({ type = "snapshot", id = 2, events = true, max_events = 5 })
    local with = c.wait(of_type("snapshot", 2)).snapshot
    -- the last five events (fewer right after the program started)
    assert.equal(math.min(5, with.seq), #with.events)
    assert.equal(with.seq, with.events[#with.events].seq)
    assert.is_true(with.seq > 5 or #with.events == with.seq)
    c.close()
  end)

  it("streams the live events to subscribers, with task meta", function()
    local c = client(child.port)
    c.send({ type = "subscribe", id = 3 })
    local sub = c.wait(of_type("subscribed", 3))
    assert.truthy(sub)
    local meta = c.wait(of_type("task"), 3000)
    assert.truthy(meta, "a task message after a spawn")
    assert.truthy(meta.name:match("^extra%d+$"))
    local seqs = {}
    for _, m in ipairs(c.msgs) do
      if m.type == "event" then seqs[#seqs + 1] = m.seq end
    end
    assert.is_true(#seqs >= 10)
    assert.equal(sub.seq + 1, seqs[1])
    for i = 2, #seqs do assert.equal(seqs[i - 1] + 1, seqs[i]) end
    c.send({ type = "unsubscribe", id = 4 })
    assert.truthy(c.wait(of_type("unsubscribed", 4)))
    c.close()
  end)

  it("reports errors and stays usable", function()
    local c = client(child.port)
    c.send({ type = "bogus", id = 5 })
    assert.equal("unknown command 'bogus'", c.wait(of_type("error", 5)).error)
    c.raw("{not json\n")
    local err = c.wait(function(m) return m.type == "error" and m.id == nil end)
    assert.truthy(err.error:find("invalid JSON", 1, true))
    c.send({ type = "stats", id = 6 })
    local stats = c.wait(of_type("stats", 6))
    assert.is_true(stats.clients >= 1)
    assert.is_false(c.closed)
    c.close()
  end)

  it("feeds a console model that matches the server", function()
    local conn = remote.connect("127.0.0.1", child.port, { resync = 3600000 })
    assert.equal("connecting", conn.state)
    assert.truthy(env.run_until(function() return conn.snapshots >= 1 end, 3000))
    assert.equal("connected", conn.state)
    assert.truthy(env.run_until(function() return child.out:find("QUIET") end, 5000))
    -- the model was built from one snapshot and the events after it
    local truth_client = client(child.port)
    truth_client.send({ type = "snapshot", id = 9 })
    local truth = truth_client.wait(of_type("snapshot", 9)).snapshot
    truth_client.close()
    env.run_until(function() return conn.model.seq >= truth.seq end, 3000)
    local mine = conn:snapshot()
    assert.is_true(conn.events > 0)
    assert.equal(#truth.tasks, #mine.tasks)
    for i, t in ipairs(truth.tasks) do
      for _, f in ipairs({ "id", "name", "state", "resumes", "busy", "where", "await",
        "created", "ended", "parent", "last_change" }) do
        assert.equal(t[f], mine.tasks[i][f], ("task %d field %s"):format(t.id, f))
      end
    end
    assert.truthy(conn:status():find("remote 127.0.0.1:" .. child.port, 1, true))
    local src = conn:source()
    assert.equal("remote", src.mode)
    assert.equal(#truth.tasks, #src.snapshot({ events = true }).tasks)
    conn:close()
    assert.equal("closed", conn.state)
    uv.run("nowait")
  end)

  it("survives a client that vanishes", function()
    local gone = client(child.port)
    gone.send({ type = "subscribe", id = 1 })
    gone.wait(of_type("subscribed", 1))
    gone.tcp:close_reset()
    uv.run("nowait")
    local c = client(child.port)
    c.send({ type = "ping", id = 2 })
    assert.truthy(c.wait(of_type("pong", 2)))
    -- the server notices the reset when it reads: ask until it has
    local clients
    for id = 3, 40 do
      c.send({ type = "stats", id = id })
      clients = c.wait(of_type("stats", id)).clients
      if clients == 1 then break end
      env.run_until(function() return false end, 50)
    end
    assert.equal(1, clients)
    c.close()
  end)
end)

describe("remote server with a token", function()
  local child

  setup(function() child = start_child("steady", "s3cret") end)
  teardown(function() child.stop() end)

  it("refuses commands before authentication", function()
    local c = client(child.port)
    assert.is_true(c.wait(of_type("hello")).auth)
    c.send({ type = "ping", id = 1 })
    assert.equal("authentication required", c.wait(of_type("error", 1)).error)
    assert.truthy(env.run_until(function() return c.closed end, 3000))
    assert.is_nil(c.wait(of_type("pong"), 100))
    c.close()
  end)

  it("refuses a wrong token", function()
    local c = client(child.port)
    c.send({ type = "auth", token = "guess", id = 1 })
    assert.equal("bad token", c.wait(of_type("error", 1)).error)
    assert.truthy(env.run_until(function() return c.closed end, 3000))
    c.close()
  end)

  it("accepts the right token", function()
    local c = client(child.port)
    c.send({ type = "auth", token = "s3cret", id = 1 })
    assert.is_true(c.wait(of_type("auth", 1)).ok)
    c.send({ type = "ping", id = 2 })
    assert.truthy(c.wait(of_type("pong", 2)))
    c.close()
    local conn = remote.connect("127.0.0.1", child.port, { token = "s3cret" })
    assert.truthy(env.run_until(function() return conn.snapshots >= 1 end, 3000))
    assert.is_true(#conn:snapshot().tasks >= 3)
    conn:close()
    local bad = remote.connect("127.0.0.1", child.port, { token = "nope" })
    assert.truthy(env.run_until(function() return bad.state == "closed" end, 3000))
    assert.equal("bad token", bad.error)
    uv.run("nowait")
  end)
end)

describe("remote server under a slow client", function()
  local child

  setup(function() child = start_child("flood") end)
  teardown(function() child.stop() end)

  it("drops events for a client that does not read and keeps serving others", function()
    local slow = client(child.port)
    slow.send({ type = "subscribe", id = 1 })
    slow.wait(of_type("subscribed", 1))
    slow.tcp:read_stop()  -- from now on nothing is read: the socket buffers fill up
    local fast = client(child.port)
    local worst, sent, got = 0, 0, 0
    local started = {}
    local pinger = uv.new_timer()
    pinger:start(100, 100, function()
      sent = sent + 1
      started[sent] = uv.hrtime()
      fast.send({ type = "ping", id = sent })
    end)
    env.run_until(function()
      for _, m in ipairs(fast.msgs) do
        if m.type == "pong" and started[m.id] and not m.seen then
          m.seen = true
          got = got + 1
          worst = math.max(worst, (uv.hrtime() - started[m.id]) / 1e6)
        end
      end
      return sent >= 25
    end, 10000)
    pinger:close()
    assert.is_true(got >= 20, "pongs received: " .. got)
    assert.is_true(worst < 1000, "slowest pong took " .. worst .. " ms")
    -- the kernel's socket buffers take several MB before the server's queue fills: on a
    -- slow machine (ASan, a busy host) the flood needs longer than the pings to get there
    local asked, deadline = 999, uv.now() + 20000
    local stats
    repeat
      asked = asked + 1
      fast.send({ type = "stats", id = asked })
      stats = assert(fast.wait(of_type("stats", asked)), "no stats reply")
      local done = stats.events_dropped > 0 or stats.clients == 1
      if not done then env.run_until(function() return false end, 200) end
    until done or uv.now() > deadline
    assert.is_true(stats.events_dropped > 0 or stats.clients == 1,
      "the slow client had events dropped or was disconnected")
    assert.is_true(stats.events_sent > 0)
    slow.close()
    fast.close()
  end)
end)

describe("remote server with the C core", function()
  it("serves the real tasks and their events", function()
    if not env.core_available() then
      pending("build/async_inspect/core.so is not built")
      return
    end
    local child = start_child("core")
    local c = client(child.port)
    c.send({ type = "subscribe", id = 1 })
    c.wait(of_type("subscribed", 1))
    assert.truthy(c.wait(function(m) return m.type == "event" and m.kind == "yield" end))
    c.send({ type = "snapshot", id = 2 })
    local snap = c.wait(of_type("snapshot", 2)).snapshot
    local names = {}
    for _, t in ipairs(snap.tasks) do names[t.name] = t.state end
    assert.equal("suspended", names.fast)
    assert.equal("suspended", names.slow)
    c.close()
    child.stop()
  end)
end)

describe("remote addresses and arguments", function()
  it("listens on loopback only unless told otherwise", function()
    assert.is_true(remote.is_loopback("127.0.0.1"))
    assert.is_true(remote.is_loopback("127.4.5.6"))
    assert.is_true(remote.is_loopback("::1"))
    assert.is_true(remote.is_loopback("localhost"))
    assert.is_false(remote.is_loopback("0.0.0.0"))
    assert.is_false(remote.is_loopback("192.0.2.1"))
    local fake = require("fake_inspector").new()
    local ok, err = pcall(remote.serve, { host = "0.0.0.0", inspector = fake })
    assert.is_false(ok)
    assert.truthy(err:find("not a loopback address; pass allow_remote=true", 1, true))
    local srv = remote.serve({ host = "0.0.0.0", allow_remote = true, inspector = fake })
    assert.is_true(srv.port > 0)
    srv:close()
    local local_srv = remote.serve({ host = "localhost", inspector = fake })
    assert.equal("127.0.0.1", local_srv.host)
    local_srv:close()
  end)

  it("reports a console that cannot connect", function()
    local fake = require("fake_inspector").new()
    local srv = remote.serve({ inspector = fake })
    local port = srv.port
    srv:close()
    local conn = remote.connect("127.0.0.1", port)
    assert.truthy(env.run_until(function() return conn.state == "closed" end, 3000))
    assert.truthy(conn.error:find("cannot connect", 1, true))
    assert.truthy(conn:status():find("disconnected", 1, true))
    assert.same({}, conn:snapshot().tasks)
  end)

  it("refuses a server that speaks another protocol version", function()
    local tcp = uv.new_tcp()
    tcp:bind("127.0.0.1", 0)
    tcp:listen(1, function()
      local peer = uv.new_tcp()
      tcp:accept(peer)
      peer:write(wire.encode({ type = "hello", protocol = 2 }) .. "\n")
    end)
    local conn = remote.connect("127.0.0.1", tcp:getsockname().port)
    assert.truthy(env.run_until(function() return conn.state == "closed" end, 3000))
    assert.equal("server speaks protocol 2, this console 1", conn.error)
    tcp:close()
    uv.run("nowait")
  end)

  it("checks its arguments", function()
    assert.has_error(function() remote.serve(5) end,
      "bad argument #1 to 'serve' (table expected, got number)")
    assert.has_error(function() remote.serve({ port = -1 }) end,
      "bad argument #1 to 'serve' (port must be an integer from 0 to 65535)")
    assert.has_error(function() remote.serve({ token = "" }) end,
      "bad argument #1 to 'serve' (token must be a non-empty string)")
    assert.has_error(function() remote.connect(1, 2) end,
      "bad argument #1 to 'connect' (string expected, got number)")
    assert.has_error(function() remote.connect("127.0.0.1", "x") end,
      "bad argument #2 to 'connect' (integer expected, got string)")
    assert.has_error(function() remote.console("127.0.0.1", 1, 3) end,
      "bad argument #3 to 'console' (table expected, got number)")
  end)
end)
