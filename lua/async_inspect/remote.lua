--- Remote inspection: a server inside the inspected program that exposes snapshots and
-- the live event stream over TCP, and the console side that feeds the dashboard.
--
-- Protocol (version 1, documented in docs/dashboard.md): newline-delimited JSON objects,
-- each with a `type`. The server greets with `hello`; with a token set, the client must
-- send `auth` first. Commands: `ping`, `snapshot`, `subscribe`, `unsubscribe`, `stats`.
--
-- The server runs on the program's luv loop and never blocks it: every client has a
-- bounded output queue; events for a client whose queue is full are dropped and counted,
-- and a client whose queue keeps growing, or whose socket fails, is disconnected.
-- @module async_inspect.remote

local uv = require("luv")
local wire = require("async_inspect.wire")
local feed_mod = require("async_inspect.feed")
local model = require("async_inspect.model")
local handles = require("async_inspect.handles")

local M = {}

--- Protocol version spoken by this module.
M.PROTOCOL = 1

local format = string.format

local function bad(n, fname, expected, got)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected,
    got == nil and "no value" or type(got)), 3)
end

--- Whether an address is a loopback address (127.0.0.0/8, ::1, localhost).
-- @tparam string host
-- @treturn boolean
function M.is_loopback(host)
  if type(host) ~= "string" then bad(1, "is_loopback", "string", host) end
  return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

local function version()
  local ok, ai = pcall(require, "async_inspect")
  if not ok or type(ai) ~= "table" then return nil end
  return rawget(ai, "_VERSION") or rawget(ai, "VERSION")
end

-- Server ------------------------------------------------------------------------------------

local Server = {}
Server.__index = Server

local function same_token(a, b)
  if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = diff | (a:byte(i) ~ b:byte(i)) end
  return diff == 0
end

local function close_client(self, c, reason)
  if c.closed then return end
  c.closed = true
  c.reason = reason
  self.clients[c] = nil
  self.nclients = self.nclients - 1
  handles.close_now(c.handle)
end

-- Queue a line for a client. Droppable lines (events) are dropped when the client's queue
-- is over max_queue; any line past max_pending disconnects the client.
local function send_raw(self, c, data, droppable, count)
  if c.closed then return false end
  local queued = c.handle:get_write_queue_size()
  if droppable and queued > self.max_queue then
    c.dropped = c.dropped + (count or 1)
    c.unreported = c.unreported + (count or 1)
    self.events_dropped = self.events_dropped + (count or 1)
    return false
  end
  if queued + #data > self.max_pending then
    close_client(self, c, "too slow")
    return false
  end
  local ok = pcall(c.handle.write, c.handle, data, function(err)
    if err then close_client(self, c, "write error: " .. tostring(err)) end
  end)
  if not ok then close_client(self, c, "write failed") end
  return ok
end

local function send(self, c, msg)
  return send_raw(self, c, wire.encode(msg) .. "\n", false)
end

local function poll(self)
  local lines, events = {}, 0
  self.feed:poll(function(msg)
    lines[#lines + 1] = wire.encode(msg)
    if msg.type == "event" then events = events + 1 end
  end)
  if #lines == 0 then return end
  local data = table.concat(lines, "\n") .. "\n"
  for c in pairs(self.clients) do
    if c.subscribed then
      if c.unreported > 0 and c.handle:get_write_queue_size() <= self.max_queue // 2 then
        -- tell the client it missed events, so it can ask for a fresh snapshot
        send(self, c, { type = "dropped", events = c.unreported, total = c.dropped })
        c.unreported = 0
      end
      if send_raw(self, c, data, true, events) then
        self.events_sent = self.events_sent + events
      end
    end
  end
end

local COMMANDS = {}

function COMMANDS.ping(self, c, msg)
  send(self, c, { type = "pong", id = msg.id, t = self.inspector.now() })
end

function COMMANDS.snapshot(self, c, msg)
  -- deliver pending events first, so `seq` splits the stream exactly: events up to it are
  -- in the snapshot, later ones are not
  poll(self)
  local snap = self.inspector.snapshot({ events = msg.events and true or false })
  local max_events = tonumber(msg.max_events)
  if snap.events and max_events and #snap.events > max_events then
    snap.events = table.move(snap.events, #snap.events - max_events + 1, #snap.events, 1, {})
  end
  snap.seq = self.feed.next_seq - 1
  send(self, c, { type = "snapshot", id = msg.id, seq = snap.seq, snapshot = snap })
end

function COMMANDS.subscribe(self, c, msg)
  poll(self)
  c.subscribed = true
  send(self, c, { type = "subscribed", id = msg.id, seq = self.feed.next_seq - 1 })
end

function COMMANDS.unsubscribe(self, c, msg)
  c.subscribed = false
  send(self, c, { type = "unsubscribed", id = msg.id })
end

function COMMANDS.stats(self, c, msg)
  send(self, c, { type = "stats", id = msg.id, clients = self.nclients,
    events_sent = self.events_sent, events_dropped = self.events_dropped,
    dropped = c.dropped })
end

local function handle_line(self, c, line)
  if line == "" then return end
  local msg, err = wire.decode(line)
  if type(msg) ~= "table" then
    send(self, c, { type = "error", error = "invalid JSON: " .. tostring(err) })
    return
  end
  if not c.authed then
    if msg.type == "auth" and same_token(msg.token, self.token) then
      c.authed = true
      send(self, c, { type = "auth", id = msg.id, ok = true })
    else
      send(self, c, { type = "error", id = msg.id,
        error = msg.type == "auth" and "bad token" or "authentication required" })
      -- let the error reach the client, then hang up
      c.handle:shutdown(function() close_client(self, c, "authentication failed") end)
      c.closing = true
    end
    return
  end
  local cmd = COMMANDS[msg.type]
  if not cmd then
    send(self, c, { type = "error", id = msg.id,
      error = "unknown command '" .. tostring(msg.type) .. "'" })
    return
  end
  local ok, cerr = pcall(cmd, self, c, msg)
  if not ok then send(self, c, { type = "error", id = msg.id, error = tostring(cerr) }) end
end

local function on_read(self, c, err, data)
  if err or not data then
    close_client(self, c, err or "closed by peer")
    return
  end
  if c.closing then return end
  local lines, lerr = c.reader(data)
  if not lines then
    send(self, c, { type = "error", error = lerr })
    close_client(self, c, lerr)
    return
  end
  for _, line in ipairs(lines) do
    if c.closed or c.closing then return end
    handle_line(self, c, line)
  end
end

local function on_connection(self, err)
  if err then return end
  local handle = uv.new_tcp()
  if not pcall(self.tcp.accept, self.tcp, handle) then
    handles.close_now(handle)
    return
  end
  local c = { handle = handle, authed = self.token == nil, subscribed = false, dropped = 0,
    unreported = 0, reader = wire.line_reader(self.max_line) }
  self.clients[c] = true
  self.nclients = self.nclients + 1
  if not self.keep_alive then handle:unref() end
  send(self, c, { type = "hello", protocol = M.PROTOCOL, server = "async_inspect",
    version = version(), pid = uv.os_getpid(), auth = self.token ~= nil,
    t = self.inspector.now() })
  handle:read_start(function(rerr, data)
    local ok, perr = pcall(on_read, self, c, rerr, data)
    if not ok then close_client(self, c, tostring(perr)) end
  end)
end

local function check_serve_opts(opts)
  if type(opts) ~= "table" then bad(1, "serve", "table", opts) end
  local host = opts.host or "127.0.0.1"
  if type(host) ~= "string" then error("bad argument #1 to 'serve' (host must be a string)", 3) end
  local port = opts.port or 0
  if math.type(port) ~= "integer" or port < 0 or port > 65535 then
    error("bad argument #1 to 'serve' (port must be an integer from 0 to 65535)", 3)
  end
  if opts.token ~= nil and (type(opts.token) ~= "string" or opts.token == "") then
    error("bad argument #1 to 'serve' (token must be a non-empty string)", 3)
  end
  if not M.is_loopback(host) and opts.allow_remote ~= true then
    error("serve: refusing to listen on " .. host .. ", which is not a loopback address; "
      .. "pass allow_remote=true to expose the program on the network", 3)
  end
  if host == "localhost" then host = "127.0.0.1" end
  return host, port
end

--- Serve snapshots and the live event stream over TCP.
-- @tparam table opts `host` (default "127.0.0.1"; a non-loopback address needs
-- `allow_remote=true`), `port` (default 0: any free port), `token` (shared secret the
-- client must send first), `interval` (event poll period in ms, default 100),
-- `max_queue` (bytes queued for a client beyond which its events are dropped, default
-- 1 MiB), `max_pending` (bytes beyond which the client is disconnected, default 64 MiB),
-- `max_line` (longest command line, default 1 MiB), `keep_alive` (the server keeps the luv
-- loop running, default false), `inspector` (default `require "async_inspect"`)
-- @treturn table server with `close()`, `stats()` and the fields `host`, `port`
-- @usage local srv = ai.serve{port = 7001, token = os.getenv("AI_TOKEN")}; print(srv.port)
function M.serve(opts)
  local host, port = check_serve_opts(opts)
  local inspector = opts.inspector or require("async_inspect")
  local tcp = uv.new_tcp()
  local ok, res, berr = pcall(tcp.bind, tcp, host, port)
  if not ok or not res then
    handles.close_now(tcp)
    error("serve: cannot listen on " .. host .. ":" .. port .. ": "
      .. tostring(ok and berr or res), 2)
  end
  local self = setmetatable({
    inspector = inspector, tcp = tcp, token = opts.token, clients = {}, nclients = 0,
    max_queue = opts.max_queue or 1048576, max_pending = opts.max_pending or 67108864,
    max_line = opts.max_line or 1048576, keep_alive = opts.keep_alive and true or false,
    events_sent = 0, events_dropped = 0, closed = false,
  }, Server)
  local _, last = feed_mod.bounds(inspector)
  self.feed = feed_mod.new(inspector, { from_seq = last + 1 })
  local lok, lerr = tcp:listen(128, function(err)
    local cok, cerr = pcall(on_connection, self, err)
    if not cok then io.stderr:write("async_inspect.remote: " .. tostring(cerr) .. "\n") end
  end)
  if not lok then
    handles.close_now(tcp)
    error("serve: cannot listen on " .. host .. ":" .. port .. ": " .. tostring(lerr), 2)
  end
  local addr = tcp:getsockname()
  self.host, self.port = addr.ip, addr.port
  self.timer = uv.new_timer()
  local interval = opts.interval or 100
  self.timer:start(interval, interval, function()
    local listening = false
    for c in pairs(self.clients) do listening = listening or c.subscribed end
    if not listening then
      -- nobody listens: skip the backlog instead of sending it to the next subscriber
      self.feed:skip()
      return
    end
    local pok, perr = pcall(poll, self)
    if not pok then io.stderr:write("async_inspect.remote: " .. tostring(perr) .. "\n") end
  end)
  if not self.keep_alive then
    tcp:unref()
    self.timer:unref()
  end
  return self
end

--- Counters of the server.
-- @treturn table `{clients=, events_sent=, events_dropped=}`
function Server:stats()
  return { clients = self.nclients, events_sent = self.events_sent,
    events_dropped = self.events_dropped }
end

--- Stop listening and disconnect every client.
function Server:close()
  if self.closed then return end
  self.closed = true
  for c in pairs(self.clients) do close_client(self, c, "server closed") end
  handles.release(self.timer)
  handles.close_now(self.tcp)
end

M.Server = Server

-- Client --------------------------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn

local function conn_close(self, reason)
  if self.closed then return end
  self.closed = true
  self.state = "closed"
  self.error = self.error or reason
  handles.release(self.timer)
  handles.close_now(self.tcp)
  if self.on_close then pcall(self.on_close, self.error) end
end

--- Send one message to the server.
-- @tparam table msg
-- @treturn boolean false when the connection is closed
function Conn:send(msg)
  if type(msg) ~= "table" then bad(1, "send", "table", msg) end
  if self.closed then return false end
  self.tcp:write(wire.encode(msg) .. "\n", function(err)
    if err then conn_close(self, "write error: " .. tostring(err)) end
  end)
  return true
end

local function ready(self)
  self.state = "connected"
  self:send({ type = "subscribe", id = 1 })
  self:send({ type = "snapshot", id = 2, events = true, max_events = self.max_events })
  self.timer = uv.new_timer()
  self.timer:start(self.resync, self.resync, function()
    -- a fresh snapshot brings resources, warnings and what events cannot tell
    if not self.closed then self:send({ type = "snapshot", id = 3 }) end
  end)
end

local function on_message(self, msg)
  local ty = msg.type
  if ty == "hello" then
    self.hello = msg
    if msg.protocol ~= M.PROTOCOL then
      self.error = "server speaks protocol " .. tostring(msg.protocol) .. ", this console "
        .. M.PROTOCOL
      conn_close(self)
      return
    end
    if msg.t then self.clock = { server = msg.t, here = uv.hrtime() } end
    if self.token then
      self:send({ type = "auth", token = self.token })
    else
      ready(self)
    end
  elseif ty == "auth" then
    if msg.ok then ready(self) end
  elseif ty == "error" then
    self.error = msg.error
    if self.state ~= "connected" then conn_close(self) end
  elseif ty == "snapshot" and type(msg.snapshot) == "table" then
    self.model:load_snapshot(msg.snapshot, { seq = msg.seq })
    self.clock = { server = msg.snapshot.t, here = uv.hrtime() }
    self.snapshots = self.snapshots + 1
  elseif ty == "event" or ty == "task" or ty == "gap" then
    self.model:feed(msg)
    if ty == "event" then self.events = self.events + 1 end
    if ty == "gap" then self:send({ type = "snapshot", id = 4 }) end
  elseif ty == "dropped" then
    self.dropped = self.dropped + (msg.events or 0)
    self:send({ type = "snapshot", id = 4 })
  end
  if self.on_message then self.on_message(msg) end
end

--- Connect to a server started with `serve`.
-- @tparam string host
-- @tparam integer port
-- @tparam[opt] table opts `token`, `resync` (ms between full snapshots, default 1000),
-- `max_events` (events kept for the views, default 20000), `on_message` (function(msg)
-- called for every message), `on_close` (function(err))
-- @treturn table connection with `snapshot(need)`, `now()`, `status()`, `send(msg)`,
-- `close()`, `source()` and the fields `state` ("connecting", "connected", "closed"),
-- `error`, `model`, `hello`, `events`, `dropped`
-- @usage local conn = remote.connect("127.0.0.1", 7001); uv.run()
function M.connect(host, port, opts)
  if type(host) ~= "string" then bad(1, "connect", "string", host) end
  if math.type(port) ~= "integer" then bad(2, "connect", "integer", port) end
  if opts ~= nil and type(opts) ~= "table" then bad(3, "connect", "table", opts) end
  opts = opts or {}
  local self = setmetatable({
    host = host, port = port, token = opts.token, state = "connecting",
    resync = opts.resync or 1000, max_events = opts.max_events or 20000,
    model = model.new({ max_events = opts.max_events or 20000 }),
    on_message = opts.on_message, on_close = opts.on_close,
    events = 0, dropped = 0, snapshots = 0, closed = false,
    reader = wire.line_reader(opts.max_line or 268435456),
  }, Conn)
  self.tcp = uv.new_tcp()
  if host == "localhost" then host = "127.0.0.1" end
  local ok, cerr = pcall(self.tcp.connect, self.tcp, host, port, function(err)
    if err then
      conn_close(self, "cannot connect to " .. self.host .. ":" .. port .. ": " .. err)
      return
    end
    self.tcp:read_start(function(rerr, data)
      if rerr or not data then
        conn_close(self, rerr or "connection closed by the server")
        return
      end
      local lines, lerr = self.reader(data)
      if not lines then return conn_close(self, lerr) end
      for _, line in ipairs(lines) do
        local msg = wire.decode(line)
        if type(msg) == "table" then
          local mok, merr = pcall(on_message, self, msg)
          if not mok then conn_close(self, "bad message: " .. tostring(merr)) end
        end
        if self.closed then return end
      end
    end)
  end)
  if not ok then
    handles.close_now(self.tcp)
    error("connect: " .. tostring(cerr), 2)
  end
  return self
end

--- The server's clock now, estimated from the last snapshot and the local clock.
-- @treturn integer ns on the server's clock (0 before the first message)
function Conn:now()
  if not self.clock then return self.model.t end
  local est = self.clock.server + (uv.hrtime() - self.clock.here)
  return math.max(est, self.model.t)
end

--- The latest state of the remote program as a snapshot.
-- @tparam[opt] table need `events` (include the events received)
-- @treturn table snapshot
function Conn:snapshot(need)
  local t = self.closed and self.model.t or self:now()
  return self.model:snapshot({ t = t, events = need and need.events })
end

--- One line describing the connection.
-- @treturn string
function Conn:status()
  local where = self.host .. ":" .. self.port
  if self.state == "closed" then
    return "disconnected from " .. where .. ": " .. tostring(self.error or "closed")
  end
  if self.state == "connecting" then return "connecting to " .. where end
  local s = "remote " .. where
  if self.hello and self.hello.pid then s = s .. " pid " .. self.hello.pid end
  if self.dropped > 0 then s = s .. "  " .. self.dropped .. " events dropped" end
  return s
end

--- Close the connection.
function Conn:close()
  conn_close(self, "closed")
end

--- A dashboard source reading this connection.
-- @treturn table source `{mode="remote", snapshot=, status=, close=}`
function Conn:source()
  return {
    mode = "remote",
    snapshot = function(need) return self:snapshot(need) end,
    status = function() return self:status() end,
    close = function() self:close() end,
  }
end

M.Conn = Conn

--- Connect to a server and show its dashboard. Run the luv loop afterwards (`uv.run()`);
-- quitting the dashboard closes the connection.
-- @tparam string host
-- @tparam integer port
-- @tparam[opt] table opts connection options (`token`, ...) and dashboard options
-- (`ascii`, `color`, `interval`, `on_quit`)
-- @treturn table the dashboard handle (`:stop()`) with the field `connection`
-- @usage remote.console("127.0.0.1", 7001); require("luv").run()
function M.console(host, port, opts)
  if type(host) ~= "string" then bad(1, "console", "string", host) end
  if math.type(port) ~= "integer" then bad(2, "console", "integer", port) end
  if opts ~= nil and type(opts) ~= "table" then bad(3, "console", "table", opts) end
  opts = opts or {}
  local conn = M.connect(host, port, opts)
  local tui_opts = {}
  for k, v in pairs(opts) do tui_opts[k] = v end
  tui_opts.source = conn:source()
  local user_quit = opts.on_quit
  tui_opts.on_quit = function()
    conn:close()
    if user_quit then user_quit() end
  end
  local ok, handle = pcall(require("async_inspect.tui").start, tui_opts)
  if not ok then
    conn:close()
    error((tostring(handle):gsub("^[^:]*:%d+: ", "")), 2)
  end
  handle.connection = conn
  return handle
end

return M
