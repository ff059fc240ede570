-- Drive a program in a real terminal: a private tmux server per session (its own socket,
-- no user configuration), keys in, screen text out.
local env = require("env")

local M = {}

local count = 0

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = sh_quote

function M.available()
  return os.execute("command -v tmux >/dev/null 2>&1") == true
end

local function sleep(ms)
  os.execute("sleep " .. string.format("%.3f", ms / 1000))
end
M.sleep = sleep

-- Start `lua5.4 SCRIPT ARGS` in a detached session of w x h; after it ends the pane runs
-- `stty -a` into a file and prints "SHELL-BACK exit=N".
function M.start(script, opts)
  opts = opts or {}
  count = count + 1
  local self = {
    socket = ("ai_spec_%d_%d_%d"):format(os.time(), math.random(1e6), count),
    name = "s" .. count,
    stty_file = env.tmpname(".stty"),
  }
  local cmd = ("cd %s && LANG=%s %s %s %s; echo SHELL-BACK exit=$?; stty -a > %s; sleep 600")
    :format(sh_quote(env.ROOT), opts.lang or "C.UTF-8", env.shell_lua(), sh_quote(script),
      opts.args or "", sh_quote(self.stty_file))
  self.tmux = "tmux -L " .. self.socket .. " -f /dev/null"
  local ok = os.execute(("%s new-session -d -s %s -x %d -y %d %s"):format(self.tmux, self.name,
    opts.width or 80, opts.height or 24, sh_quote("sh -c " .. sh_quote(cmd))))
  assert(ok, "tmux new-session failed")
  return setmetatable(self, { __index = M })
end

function M:screen()
  local p = io.popen(("%s capture-pane -p -t %s"):format(self.tmux, self.name))
  local s = p:read("a")
  p:close()
  return s
end

function M:lines()
  local out = {}
  for l in (self:screen() .. "\n"):gmatch("(.-)\n") do out[#out + 1] = l end
  return out
end

-- Wait until the screen contains `text` (plain) or pred(screen) is true.
function M:wait(text, timeout)
  local pred = type(text) == "function" and text or function(s) return s:find(text, 1, true) end
  for _ = 1, math.floor((timeout or 5000) / 50) do
    local s = self:screen()
    if pred(s) then return s end
    sleep(50)
  end
  return nil, self:screen()
end

-- Send tmux key names (Enter, Escape, Right, C-c, ...) or letters.
function M:keys(...)
  for _, k in ipairs({ ... }) do
    os.execute(("%s send-keys -t %s %s"):format(self.tmux, self.name, sh_quote(k)))
  end
end

-- Type literal text.
function M:type(text)
  os.execute(("%s send-keys -t %s -l %s"):format(self.tmux, self.name, sh_quote(text)))
end

function M:resize(w, h)
  os.execute(("%s resize-window -t %s -x %d -y %d"):format(self.tmux, self.name, w, h))
end

-- The `stty -a` output written once the program ended.
function M:stty()
  local f = io.open(self.stty_file, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M:kill()
  -- the server leaves its socket file behind: find it first, remove it after
  local p = io.popen(self.tmux .. " display-message -p '#{socket_path}' 2>/dev/null")
  local socket = p:read("*l")
  p:close()
  os.execute(self.tmux .. " kill-server >/dev/null 2>&1")
  if socket and socket:find("/" .. self.socket, 1, true) then os.remove(socket) end
  os.remove(self.stty_file)
end

return M
