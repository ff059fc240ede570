-- async_inspect.render: any value as one safe line, never invoking a metamethod.
local render = require("async_inspect.render")

-- a metatable every metamethod of which raises, and records that it was called
local function hostile_mt(calls)
  local mt = {}
  for _, event in ipairs({ "__index", "__newindex", "__tostring", "__pairs", "__len", "__eq",
    "__lt", "__le", "__concat", "__call", "__name", "__close" }) do
    mt[event] = function()
      calls[#calls + 1] = event
      error("metamethod " .. event .. " invoked", 2)
    end
  end
  return mt
end

describe("render.value", function()
  it("renders scalars like Lua does, without tostring", function()
    assert.equal("nil", render.value(nil))
    assert.equal("true", render.value(true))
    assert.equal("false", render.value(false))
    assert.equal("42", render.value(42))
    assert.equal("-9223372036854775808", render.value(math.mininteger))
    assert.equal("1.0", render.value(1.0))
    assert.equal("-0.0", render.value(-0.0))
    assert.equal("0.1", render.value(0.1))
    assert.equal("1e+300", render.value(1e300))
    assert.equal("inf", render.value(math.huge))
    assert.equal("-inf", render.value(-math.huge))
    assert.equal("nan", render.value(0 / 0))
  end)

  it("never calls a number's __tostring", function()
    local calls = {}
    local saved = debug.getmetatable(0)
    debug.setmetatable(0, hostile_mt(calls))
    local ok, out = pcall(render.value, { 1, 2.5, [3.5] = 7 })
    debug.setmetatable(0, saved)
    assert.is_true(ok, out)
    assert.equal("table#1 {1, 2.5, [3.5] = 7}", out)
    assert.same({}, calls)
  end)

  it("renders a table whose every metamethod raises, reading it raw", function()
    local calls = {}
    local t = setmetatable({}, hostile_mt(calls))
    rawset(t, 1, "one")
    rawset(t, "key", "value")
    local out = render.value(t)
    assert.equal('table#1 (metatable#2) {"one", key = "value"}', out)
    assert.same({}, calls)
  end)

  it("reads __name raw, even when the metatable's own __index raises", function()
    local calls = {}
    local mt = setmetatable({}, hostile_mt(calls))
    local t = setmetatable({ x = 1 }, mt)
    assert.equal("table#1 (metatable#2) {x = 1}", render.value(t))
    rawset(mt, "__name", "Point")
    assert.equal("Point#1 {x = 1}", render.value(t))
    assert.same({}, calls)
  end)

  it("ignores a __name that is not a plain short string", function()
    local t = setmetatable({}, { __name = function() error("no") end })
    assert.equal("table#1 (metatable#2) {}", render.value(t))
    t = setmetatable({}, { __name = ("x"):rep(100) })
    assert.equal("table#1 (metatable#2) {}", render.value(t))
    t = setmetatable({}, { __name = "Bad\27[31mName" })
    assert.equal("Bad\\x1B[31mName#1 {}", render.value(t))
  end)

  it("shows cycles and shared tables as references to the id already printed", function()
    local t = { name = "root" }
    t.self = t
    t.child = { parent = t }
    t.child.again = t.child
    assert.equal('table#1 {child = table#2 {again = <table#2>, parent = <table#1>}, ' ..
      'name = "root", self = <table#1>}', render.value(t))
  end)

  it("limits depth, entries and width", function()
    local deep = { a = { b = { c = { d = 1 } } } }
    assert.equal("table#1 {a = table#2 {b = table#3 {...}}}", render.value(deep))
    assert.equal("table#1 {...}", render.value(deep, { depth = 0 }))
    assert.equal("table#1 {}", render.value({}, { depth = 0 }))
    local seq = {}
    for i = 1, 100 do seq[i] = i end
    seq.extra = true
    assert.equal("table#1 {1, 2, 3, ...+98}", render.value(seq, { items = 3 }))
    local wide = render.value(seq, { items = 100, width = 40 })
    assert.equal(40, #wide)
    assert.equal("...", wide:sub(-3))
  end)

  it("sorts keys: numbers, strings, booleans, then others by id", function()
    local f = function() end
    local t = { [true] = 1, b = 2, a = 3, [10] = 4, [f] = 5, ["not an id"] = 6, ["end"] = 7 }
    assert.equal('table#1 {[10] = 4, a = 3, b = 2, ["end"] = 7, ["not an id"] = 6, ' ..
      "[true] = 1, [function#2 <" .. debug.getinfo(f, "S").short_src .. ":" ..
      debug.getinfo(f, "S").linedefined .. ">] = 5}", render.value(t))
  end)

  it("names table keys without expanding them", function()
    local k = { big = true }
    assert.equal("table#1 {[table#2] = 1}", render.value({ [k] = 1 }))
  end)

  it("escapes binary strings so they read back in Lua as the same bytes", function()
    local bytes = {}
    for b = 0, 255 do bytes[#bytes + 1] = string.char(b) end
    local all = table.concat(bytes)
    local out = render.value(all, { string_len = 1000, width = 2000 })
    assert.is_nil(out:find("[%z\1-\31\127]"))
    assert.equal(all, load("return " .. out)())
    assert.equal('"a\\x00b\\xFF\\n\\"\\\\"', render.value('a\0b\255\n"\\'))
  end)

  it("keeps valid printable UTF-8 and escapes C1 controls and broken sequences", function()
    assert.equal('"héllo ✓"', render.value("héllo ✓"))
    assert.equal('"\\xC2\\x85"', render.value("\xC2\x85"))
    assert.equal('"\\xE2\\x9C"', render.value("\xE2\x9C"))
    assert.equal('"\\xC0\\xAF"', render.value("\xC0\xAF"))
  end)

  it("cuts a 10 MB string after the shown prefix, never copying it whole", function()
    local big = ("x"):rep(10 * 1024 * 1024)
    collectgarbage()
    collectgarbage("stop")
    local before = collectgarbage("count")
    local out = render.value(big)
    local grown = collectgarbage("count") - before
    collectgarbage("restart")
    assert.equal('"' .. ("x"):rep(120) .. '"...<10485760 bytes>', out)
    assert.is_true(grown < 64, ("rendering allocated %.0f KB"):format(grown))
  end)

  it("does not split a UTF-8 sequence when cutting", function()
    local s = ("é"):rep(100)
    assert.equal('"' .. ("é"):rep(5) .. '"...<200 bytes>', render.value(s, { string_len = 11 }))
  end)

  it("renders functions, userdata and threads as a type and an id", function()
    local function here() end
    local info = debug.getinfo(here, "S")
    assert.equal(("function#1 <%s:%d>"):format(info.short_src, info.linedefined),
      render.value(here))
    assert.equal("function#1 [C]", render.value(print))
    assert.equal("FILE*#1", render.value(io.stdout))
    local co = coroutine.create(function() end)
    assert.equal("thread#1 suspended", render.value(co))
    assert.equal("thread#1 running", render.value((coroutine.running())))
  end)

  it("never calls a userdata's __tostring, __index or __name (a luv handle)", function()
    local uv = require("luv")
    local timer = uv.new_timer()
    local mt = debug.getmetatable(timer)
    local calls, saved = {}, {}
    for _, k in ipairs({ "__tostring", "__index", "__len" }) do
      saved[k] = rawget(mt, k)
      rawset(mt, k, function() calls[#calls + 1] = k; error("invoked " .. k) end)
    end
    local ok, out = pcall(render.value, { handle = timer, file = io.stdout })
    for k, v in pairs(saved) do rawset(mt, k, v) end
    timer:close()
    uv.run("nowait")
    assert.is_true(ok, out)
    assert.equal("table#1 {file = FILE*#2, handle = uv_timer#3}", out)
    assert.same({}, calls)
  end)

  it("keeps ids across calls with a shared id table, and keeps nothing alive", function()
    local ids = render.ids()
    local t = {}
    assert.equal("table#1 {}", render.value(t, { ids = ids }))
    assert.equal("table#2 {a = <table#1>}", render.value({ a = t, b = nil }, { ids = ids })
      :gsub("table#1 {}", "<table#1>"))
    local weak = setmetatable({ t }, { __mode = "v" })
    t = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    assert.is_nil(weak[1])
  end)

  it("looks at a bounded number of keys in a huge table", function()
    local t = {}
    for i = 1, 20000 do t["k" .. i] = i end
    local out = render.value(t, { items = 2, scan = 100 })
    assert.matches("^table#1 {k%d+ = %d+, k%d+ = %d+, ...}$", out)
  end)

  it("checks its arguments", function()
    assert.has_error(function() render.value(1, 5) end,
      "bad argument #2 to 'value' (table expected, got number)")
    assert.has_error(function() render.value(1, { depth = -1 }) end,
      "bad argument #2 to 'value' (depth must be an integer from 0 to 20)")
    assert.has_error(function() render.value(1, { width = 1.5 }) end,
      "bad argument #2 to 'value' (width must be an integer from 16 to 1048576)")
    assert.has_error(function() render.value(1, { ids = {} }) end,
      "bad argument #2 to 'value' (ids must come from render.ids())")
    assert.has_error(function() render.escape(nil) end,
      "bad argument #1 to 'escape' (string expected, got no value)")
    assert.has_error(function() render.string("x", -1) end,
      "bad argument #2 to 'string' (non-negative integer expected)")
  end)
end)
