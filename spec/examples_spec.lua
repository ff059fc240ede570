-- The example gallery: every examples/*.lua runs to completion, exit status 0, within a
-- timeout, with no terminal (stdin is /dev/null) and no network beyond loopback.
--
-- An example runs as `lua5.4 examples/NAME.lua` from the project root unless its header
-- says otherwise in a line `-- Run: COMMAND` (for instance
-- `-- Run: bin/async-inspect run examples/plain_luv.lua`), which is then run as written.
local process = require("spec.support.process")

local ROOT = process.ROOT
local TIMEOUT = 60

local function list_examples()
  local p = io.popen("ls -1 " .. process.quote(ROOT .. "/examples"))
  local names = {}
  for name in p:lines() do
    if name:match("%.lua$") then names[#names + 1] = name end
  end
  p:close()
  table.sort(names)
  return names
end

-- the command of an example: its `-- Run:` line, or lua5.4 on the file
local function command_of(name)
  local text = assert(process.read(ROOT .. "/examples/" .. name))
  for line in text:gmatch("[^\n]+") do
    if not line:match("^%-%-") then break end
    local cmd = line:match("^%-%-%s*Run:%s*(.-)%s*$")
    if cmd then
      local argv = {}
      for word in cmd:gmatch("%S+") do argv[#argv + 1] = word end
      return argv
    end
  end
  return { "lua5.4", "examples/" .. name }
end

describe("the examples", function()
  local names = list_examples()

  it("exist", function()
    assert.is_true(#names > 0, "no example in examples/")
  end)

  for _, name in ipairs(names) do
    it(name .. " runs to completion", function()
      local argv = command_of(name)
      local res = process.run(argv, { cwd = ROOT, timeout = TIMEOUT })
      assert.is_false(res.timed_out, name .. " did not finish within " .. TIMEOUT .. " s")
      assert.equal(0, res.code, table.concat(argv, " ") .. "\n" .. process.describe(res))
    end)
  end

  it("plain_luv.lua is diagnosed under async-inspect without any call to the API", function()
    local text = assert(process.read(ROOT .. "/examples/plain_luv.lua"))
    assert.is_nil(text:find("require%s*%(?%s*[\"']async_inspect"), "plain_luv.lua must not use the API")
    local res = process.run({ "bin/async-inspect", "run", "examples/plain_luv.lua" },
      { cwd = ROOT, timeout = TIMEOUT })
    assert.equal(0, res.code, process.describe(res))
    assert.truthy(res.stdout:find("the loop is done", 1, true), res.stdout)
    assert.truthy(res.stderr:find("request 3: upstream answered 502", 1, true), res.stderr)
    local n, yield_line = 0, nil
    for line in text:gmatch("([^\n]*)\n") do
      n = n + 1
      if line:find("return coroutine.yield()", 1, true) then yield_line = n end
    end
    assert.truthy(res.stderr:find("left suspended at examples/plain_luv.lua:" .. yield_line, 1, true),
      res.stderr)
  end)
end)
