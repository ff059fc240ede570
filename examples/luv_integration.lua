--- Tracked tasks over luv: a TCP echo server on 127.0.0.1 with a burst of clients, file
-- reads and a ticking timer, every one a named task of async_inspect.luv. At the end it
-- prints the summary, what each task waited for and the last part of the timeline, where
-- each resume says which kind of luv callback woke the task (timer, fs, tcp, ...).
--
-- Run: lua5.4 examples/luv_integration.lua
-- (`make demo` runs it too)
local ai = require "async_inspect"
local aio = require "async_inspect.luv"
local uv = aio.uv

local CLIENTS = 12
local LINES = 3

-- one task per connection: echo what comes in until the client is done
local function echo(client)
  while true do
    local data = aio.read(client)
    if not data then break end
    assert(aio.await(uv.write, client, data))
  end
  client:close()
end

-- the server: a listening socket whose callback spawns a task per connection
local function start_server(connections)
  local server = uv.new_tcp()
  assert(server:bind("127.0.0.1", 0))
  assert(server:listen(64, function(err)
    assert(not err, err)
    local client = uv.new_tcp()
    server:accept(client)
    connections[#connections + 1] = aio.spawn("connection " .. #connections + 1, echo, client)
  end))
  return server, server:getsockname().port
end

-- a client: connect, send a few lines, check each echo, hang up
local function client(port, n)
  local tcp = uv.new_tcp()
  assert(aio.await(uv.tcp_connect, tcp, "127.0.0.1", port))
  for i = 1, LINES do
    local line = ("client %d line %d\n"):format(n, i)
    assert(aio.await(uv.write, tcp, line))
    assert(aio.read(tcp) == line, "echo mismatch")
    aio.sleep(n % 4) -- think a little
  end
  aio.await(uv.shutdown, tcp)
  assert(aio.read(tcp) == nil)
  tcp:close()
  return LINES
end

-- file work: write a file, then read it back in small chunks
local function files(path)
  local fd = assert(aio.await(uv.fs_open, path, "w", 420))
  assert(aio.await(uv.fs_write, fd, ("0123456789abcdef"):rep(64), -1))
  assert(aio.await(uv.fs_close, fd))
  fd = assert(aio.await(uv.fs_open, path, "r", 420))
  local total, offset = 0, 0
  while true do
    local chunk = assert(aio.await(uv.fs_read, fd, 256, offset))
    if #chunk == 0 then break end
    total, offset = total + #chunk, offset + #chunk
  end
  assert(aio.await(uv.fs_close, fd))
  assert(aio.await(uv.fs_unlink, path))
  return total
end

local function ticker(stop)
  local ticks = 0
  while not stop.now do
    aio.sleep(5)
    ticks = ticks + 1
  end
  return ticks
end

local echoed, bytes, ticks = aio.run(function()
  local connections = {}
  local server, port = start_server(connections)
  local stop = {}
  local tick = aio.spawn("ticker", ticker, stop)
  local reader = aio.spawn("file reader", files, os.tmpname())
  local clients = {}
  for n = 1, CLIENTS do clients[n] = aio.spawn("client " .. n, client, port, n) end
  local lines = 0
  for _, r in ipairs(aio.wait_all(clients)) do lines = lines + r[1] end
  aio.wait_all(connections)
  server:close()
  stop.now = true
  return lines, reader:join(), tick:join()
end)

print(("%d lines echoed to %d clients, %d bytes read from a file, %d ticks\n")
  :format(echoed, CLIENTS, bytes, ticks))
print(ai.report.summary())
print()
print("What the tasks waited for (await label and how they were woken):")
local waits = {}
for _, e in ipairs(ai.events{ kind = "yield" }) do
  if e.detail then waits[e.detail] = (waits[e.detail] or 0) + 1 end
end
local wakes = {}
for _, e in ipairs(ai.events{ kind = "resume" }) do
  if e.detail then wakes[e.detail] = (wakes[e.detail] or 0) + 1 end
end
local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end
for _, k in ipairs(sorted_keys(waits)) do print(("  %-22s %5d times"):format(k, waits[k])) end
for _, k in ipairs(sorted_keys(wakes)) do print(("  woken by %-13s %5d times"):format(k, wakes[k])) end
print()
print(ai.report.timeline{ limit = 30, width = 120 })
