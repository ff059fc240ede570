-- async_inspect.luv over real I/O: many timers, files, TCP on 127.0.0.1, pipes, a child
-- process, cancellation in the middle of I/O, dumps on a signal. Every test closes what it
-- opened and runs the loop to its end; afterwards uv.walk finds no handle.
local ai = require "async_inspect"
local aio = require "async_inspect.luv"
local uv = require "luv"
local process = require "spec.support.process"
local luv_loop = require "spec.support.luv_loop"

local open_handles, wakes_of = luv_loop.open_handles, luv_loop.wakes_of

local function has(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

-- a TCP echo server on 127.0.0.1, an ephemeral port; each connection is a task
local function echo_server(handlers)
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  assert(server:listen(128, function(err)
    assert(not err, err)
    local client = uv.new_tcp()
    server:accept(client)
    handlers[#handlers + 1] = aio.spawn("echo", function()
      while true do
        local data = aio.read(client)
        if not data then break end
        assert(aio.await(uv.write, client, data))
      end
      client:close()
    end)
  end))
  return server, server:getsockname().port
end

-- how many file descriptors this process has open
-- descriptors of this process open on `path` (other descriptors come and go
-- with the loop's own machinery, so only the file itself is counted)
local function descriptors_on(path)
  local n = 0
  local req = assert(uv.fs_scandir("/proc/self/fd"))
  while true do
    local name = uv.fs_scandir_next(req)
    if name == nil then break end
    if uv.fs_readlink("/proc/self/fd/" .. name) == path then n = n + 1 end
  end
  return n
end

local function connect(port)
  local tcp = uv.new_tcp()
  assert(aio.await(uv.tcp_connect, tcp, "127.0.0.1", port))
  return tcp
end

describe("async_inspect.luv with I/O", function()
  local dir

  before_each(function()
    ai.reset()
    dir = process.tmpdir()
  end)

  after_each(function()
    process.rmdir(dir)
    uv.run()
    assert.are.same({}, open_handles())
  end)

  it("runs 10,000 tasks sleeping at once", function()
    local n = 10000
    local results = aio.run(function()
      local handles = {}
      for i = 1, n do
        handles[i] = aio.spawn("sleeper", function() aio.sleep(i % 20); return i end)
      end
      return aio.wait_all(handles)
    end)
    assert.are.equal(n, #results)
    for i = 1, n do assert.are.equal(i, results[i][1]) end
    assert.are.equal(0, ai.stats().suspended)
    assert.are.equal(n + 1, ai.stats().completed)
  end)

  it("reads and writes temporary files, errors as nil, err", function()
    local path = dir .. "/data.txt"
    local h
    local got, missing_err = aio.run(function()
      h = aio.current()
      local fd = assert(aio.await(uv.fs_open, path, "w", 420))
      assert.are.equal(11, aio.await(uv.fs_write, fd, "hello files", -1))
      assert(aio.await(uv.fs_close, fd))
      local stat = assert(aio.await(uv.fs_stat, path))
      fd = assert(aio.await(uv.fs_open, path, "r", 420))
      local data = aio.await(uv.fs_read, fd, stat.size, 0)
      assert(aio.await(uv.fs_close, fd))
      local none, err = aio.await(uv.fs_open, dir .. "/missing", "r", 420)
      assert.is_nil(none)
      return data, err
    end)
    assert.are.equal("hello files", got)
    assert.matches("^ENOENT", missing_err)
    local wakes = wakes_of(h:id())
    assert.are.equal("spawn", wakes[1])
    for i = 2, #wakes do assert.are.equal("fs", wakes[i]) end
    local labels = {}
    for _, e in ipairs(ai.events{ task = h:id(), kind = "yield" }) do labels[#labels + 1] = e.detail end
    assert.are.same({ "await fs_open", "await fs_write", "await fs_close", "await fs_stat",
      "await fs_open", "await fs_read", "await fs_close", "await fs_open" }, labels)
  end)

  it("serves TCP clients on 127.0.0.1 and resolves names", function()
    local handlers, clients, replies = {}, {}, {}
    aio.run(function()
      local server, port = echo_server(handlers)
      local addrs = assert(aio.await(uv.getaddrinfo, "localhost", nil, { family = "inet" }))
      assert.are.equal("127.0.0.1", addrs[1].addr)
      for i = 1, 20 do
        clients[i] = aio.spawn("client", function()
          local tcp = connect(port)
          local msg = "message " .. i
          assert(aio.await(uv.write, tcp, msg))
          local reply = aio.read(tcp)
          aio.await(uv.shutdown, tcp)
          assert.is_nil(aio.read(tcp)) -- the server closes after our shutdown
          tcp:close()
          return reply
        end)
      end
      for i, r in ipairs(aio.wait_all(clients)) do replies[i] = r[1] end
      aio.wait_all(handlers)
      server:close()
    end)
    for i = 1, 20 do assert.are.equal("message " .. i, replies[i]) end
    assert.are.equal(20, #handlers)
    local client_wakes = wakes_of(clients[1]:id())
    assert.is_true(has(client_wakes, "tcp"))
    assert.are.equal("completed", ai.task_info(handlers[1]:id()).state)
    local main = ai.tasks{ name = "^main$" }[1]
    assert.is_true(has(wakes_of(main.id), "getaddrinfo"))
  end)

  it("reads a pipe to its end", function()
    local reader
    local chunks = aio.run(function()
      local fds = uv.pipe({ nonblock = true }, { nonblock = true })
      local r, w = uv.new_pipe(), uv.new_pipe()
      r:open(fds.read)
      w:open(fds.write)
      reader = aio.spawn("reader", function()
        local got = {}
        while true do
          local data, err = aio.read(r)
          assert.is_nil(err)
          if not data then break end
          got[#got + 1] = data
        end
        r:close()
        return table.concat(got)
      end)
      aio.spawn("writer", function()
        for i = 1, 3 do
          assert(aio.await(uv.write, w, "part" .. i .. ";"))
          aio.sleep(1)
        end
        w:close()
      end)
      return reader:join()
    end)
    assert.are.equal("part1;part2;part3;", chunks)
    assert.is_true(has(wakes_of(reader:id()), "pipe"))
  end)

  it("runs a child process, its output read while it runs", function()
    local code, signal, out
    aio.run(function()
      local stdout = uv.new_pipe()
      local reader = aio.spawn("stdout", function()
        local got = {}
        for data in function() return aio.read(stdout) end do got[#got + 1] = data end
        stdout:close()
        return table.concat(got)
      end)
      code, signal = aio.await(uv.spawn, "lua5.4", {
        args = { "-e", "io.write('from the child') os.exit(3)" },
        stdio = { 0, stdout, 2 },
      })
      out = reader:join()
    end)
    assert.are.equal(3, code)
    assert.are.equal(0, signal)
    assert.are.equal("from the child", out)
    local main = ai.tasks{ name = "^main$" }[1]
    assert.is_true(has(wakes_of(main.id), "process"))
  end)

  it("answers once for a repeating callback and stops it", function()
    aio.run(function()
      local t = uv.new_timer()
      assert.is_true(aio.await(uv.timer_start, t, 2, 2))
      assert.is_false(t:is_active())
      t:close()
    end)
  end)

  describe("cancelled in the middle of I/O", function()
    it("closes the socket a task was reading from", function()
      local handlers, tcp = {}, nil
      aio.run(function()
        local server, port = echo_server(handlers)
        local reader = aio.spawn("waits for a reply", function()
          tcp = connect(port)
          return aio.read(tcp) -- nobody writes: waits until cancelled
        end)
        aio.sleep(20)
        assert.are.equal("suspended", reader:status())
        assert.are.equal("read tcp", ai.task_info(reader:id()).wait)
        assert.is_true(reader:cancel())
        assert.is_true(tcp:is_closing())
        aio.wait_all(handlers) -- the server side sees the end of the stream
        server:close()
      end)
    end)

    it("kills and closes a child process a task was waiting for", function()
      local waiter
      aio.run(function()
        waiter = aio.spawn("waits for sleep", function()
          return aio.await(uv.spawn, "sleep", { args = { "30" } })
        end)
        aio.sleep(20)
        assert.are.equal("spawn", ai.task_info(waiter:id()).wait)
        waiter:cancel()
      end)
      assert.are.equal("cancelled", waiter:status())
    end)

    it("closes the file a task was opening when the answer comes late", function()
      local path = dir .. "/late.txt"
      process.write(path, "x")
      assert.are.equal(0, descriptors_on(path))
      local opener
      aio.run(function()
        opener = aio.spawn("opener", function()
          local fd = aio.await(uv.fs_open, path, "r", 420)
          -- on a loaded machine the answer can beat the cancel: then the task
          -- owns the descriptor and closes it itself
          if fd then uv.fs_close(fd) end
          return fd ~= nil
        end)
        aio.sleep(0) -- it has asked; the answer is on its way
        opener:cancel()
        aio.sleep(20)
      end)
      assert.is_true(opener:status() == "cancelled" or opener:status() == "completed")
      assert.are.equal(0, descriptors_on(path), "the late answer's descriptor was left open")
    end)
  end)

  it("writes a dump on a signal without keeping the loop alive", function()
    local path = dir .. "/dump.txt"
    local sig = aio.dump_on_signal("sigusr1", path)
    aio.run(function()
      local h = aio.spawn("napping", function() aio.sleep(200) end)
      aio.sleep(10)
      uv.kill(uv.os_getpid(), "sigusr1")
      aio.sleep(20)
      h:cancel()
    end)
    sig:close()
    local text = assert(process.read(path))
    assert.matches("=== async_inspect dump, pid %d+", text)
    assert.matches("napping", text)
  end)
end)
