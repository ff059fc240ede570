-- Faithfulness: with the hooks installed, coroutines behave exactly as with
-- Lua's own functions. Every scenario runs twice, hooks installed and
-- uninstalled, and the observable outcomes (results, error objects and
-- messages, tracebacks, statuses) must be identical.

local ai = require "async_inspect"

-- a value as text, tables by identity class (so two runs compare)
local function show(v, seen)
  local t = type(v)
  if t == "string" then return ("%q"):format(v) end
  if t == "table" then
    seen = seen or {}
    if seen[v] then return "<cycle>" end
    seen[v] = true
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k], seen) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  if t == "thread" or t == "function" or t == "userdata" then return "<" .. t .. ">" end
  return tostring(v)
end

local function pack(...) return { n = select("#", ...), ... } end

local function show_all(p)
  local parts = {}
  for i = 1, p.n do parts[i] = show(p[i]) end
  return table.concat(parts, ", ")
end

-- run scenario with hooks installed and uninstalled; both transcripts must match
local function same(scenario)
  local function transcript()
    local lines = {}
    local function log(...) lines[#lines + 1] = show_all(pack(...)) end
    scenario(log)
    return table.concat(lines, "\n")
  end
  local out = {}
  for _, mode in ipairs({ "hooked", "plain" }) do
    if mode == "hooked" then ai.install() else ai.uninstall() end
    out[mode] = transcript() -- one call site: tracebacks through it compare equal
  end
  ai.install()
  assert.are.equal(out.plain, out.hooked)
  return out.hooked
end

describe("faithfulness of the hooks", function()
  after_each(function() ai.install() end)

  it("installs C functions in the coroutine table and restores the originals exactly", function()
    ai.install()
    for _, name in ipairs({ "create", "wrap", "resume", "close" }) do
      assert.are_not.equal(ai.original[name], coroutine[name])
    end
    ai.uninstall()
    for _, name in ipairs({ "create", "wrap", "resume", "close" }) do
      assert.are.equal(ai.original[name], coroutine[name])
    end
    assert.are.equal(ai.original.yield or coroutine.yield, coroutine.yield)
  end)

  it("passes values through resume and yield, nils and counts included", function()
    local out = same(function(log)
      local co = coroutine.create(function(a, b, ...)
        log("start", a, b, select("#", ...))
        local x, y, z = coroutine.yield(a, nil, b)
        log("got", x, y, z)
        local r = pack(coroutine.yield())
        log("empty", r.n)
        return 1, nil, 3, nil
      end)
      log(coroutine.resume(co, "a", nil, nil, nil))
      log(coroutine.resume(co, 1, nil, 3))
      log(coroutine.resume(co))
      log(coroutine.status(co))
      log(coroutine.resume(co))
    end)
    assert.matches("cannot resume dead coroutine", out)
  end)

  -- the hooks skip lua_checkstack where it has nothing to do: counts on both
  -- sides of a frame's 20 free slots, a stack that must grow, and one that
  -- cannot hold the results
  it("moves any number of values through resume and yield, growing stacks as Lua does", function()
    local counts = { 0, 1, 18, 19, 20, 21, 22, 39, 40, 41, 250, 5000, 100000 }
    local out = same(function(log)
      local big = {}
      for i = 1, 100000 do big[i] = i end
      local function echo(...)
        local args = pack(...)
        while true do args = pack(coroutine.yield(table.unpack(args, 1, args.n))) end
      end
      local co, wrapped = coroutine.create(echo), coroutine.wrap(echo)
      for _, n in ipairs(counts) do
        local r = pack(coroutine.resume(co, table.unpack(big, 1, n)))
        log("resume", n, r.n, r[1], r[2], r[r.n])
        r = pack(wrapped(table.unpack(big, 1, n)))
        log("wrap", n, r.n, r[1], r[r.n])
      end
      -- results that overflow the resumer's stack (Lua's limit is 1,000,000 slots)
      local flood = coroutine.create(function()
        local t = {}
        for i = 1, 999000 do t[i] = true end
        coroutine.yield(table.unpack(t))
      end)
      local function deep(d, ...)
        if d == 0 then return pack(coroutine.resume(flood)) end
        return deep(d - 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, ...)
      end
      local r = deep(200)
      log("flood", r.n, r[1], r.n <= 2 and r[2] or r.n)
    end)
    assert.matches('"resume", 100000, 100001, true, 1, 100000', out, 1, true)
    assert.matches('"wrap", 20, 20, 1, 20', out, 1, true)
  end)

  it("reports resuming a running or normal coroutine", function()
    local out = same(function(log)
      local outer
      outer = coroutine.create(function()
        log(coroutine.resume(outer))
        local inner = coroutine.create(function()
          log(coroutine.status(outer))
          log(coroutine.resume(outer))
        end)
        log(coroutine.resume(inner))
      end)
      log(coroutine.resume(outer))
    end)
    assert.matches("cannot resume non%-suspended coroutine", out)
  end)

  it("keeps error objects: strings with positions, tables by identity, nil, numbers", function()
    same(function(log)
      local obj = { code = 42 }
      for _, e in ipairs({ "plain", obj, 17, false }) do
        local co = coroutine.create(function() error(e) end)
        local ok, err = coroutine.resume(co)
        log(ok, err, rawequal(err, e), coroutine.status(co))
      end
      local co = coroutine.create(function() error("lvl2", 2) end)
      log(coroutine.resume(co))
      co = coroutine.create(function() error() end)
      log(coroutine.resume(co))
      co = coroutine.create(function() local t = nil; return t.x end)
      log(coroutine.resume(co))
    end)
  end)

  it("prefixes wrap's string errors with the caller's position, leaves others untouched", function()
    local out = same(function(log)
      local f = coroutine.wrap(function() error("boom") end)
      log(pcall(f))
      local g = coroutine.wrap(function() error("boom") end)
      log(pcall(function() return g() end))
      local obj = {}
      local h = coroutine.wrap(function() error(obj) end)
      local ok, e = pcall(h)
      log(ok, rawequal(e, obj))
      local k = coroutine.wrap(function() return 1 end)
      log(k())
      log(pcall(function() return k() end))
      local y = coroutine.wrap(function(...) local a = coroutine.yield(...); return a * 2 end)
      log(y(1, 2, 3))
      log(y(21))
    end)
    assert.matches("faithful_spec.lua:%d+: .*boom", out)
    assert.matches("cannot resume dead coroutine", out)
  end)

  it("gives the same tracebacks and debug information", function()
    same(function(log)
      local co = coroutine.create(function()
        local function deep() coroutine.yield(debug.traceback("inside")) end
        deep()
        error("late")
      end)
      local _, tb = coroutine.resume(co)
      log(tb)
      log(debug.traceback(co))
      log(debug.traceback(co, "msg", 1))
      local info = debug.getinfo(co, 1, "Sl")
      log(info.short_src, info.currentline, info.what)
      log(coroutine.resume(co))
      log(debug.traceback(co))
      log(debug.traceback("outer"))
      local ok, err = xpcall(function() coroutine.resume(nil) end, debug.traceback)
      log(ok, err)
    end)
  end)

  it("checks arguments with the same messages", function()
    local out = same(function(log)
      log(pcall(coroutine.resume, 1))
      log(pcall(coroutine.resume))
      log(pcall(coroutine.create, "x"))
      log(pcall(coroutine.wrap, {}))
      log(pcall(coroutine.close, "co"))
      log(pcall(function() return coroutine.resume({}) end))
      log(pcall(function() return coroutine.create() end))
    end)
    assert.matches("bad argument #1 to 'resume' %((%a+) expected", out)
    assert.matches("bad argument #1 to 'create' %(function expected", out)
  end)

  it("closes coroutines with to-be-closed variables like Lua", function()
    local out = same(function(log)
      local function closer(name, fail)
        return setmetatable({}, { __close = function(_, e)
          log("close", name, e)
          if fail then error("close failed " .. name, 0) end
        end })
      end
      local co = coroutine.create(function()
        local _ <close> = closer("a")
        local _ <close> = closer("b")
        coroutine.yield("waiting")
      end)
      log(coroutine.resume(co))
      log(coroutine.close(co))
      log(coroutine.status(co))
      log(coroutine.close(co))
      co = coroutine.create(function()
        local _ <close> = closer("x", true)
        coroutine.yield()
      end)
      coroutine.resume(co)
      log(coroutine.close(co))
      co = coroutine.create(function() error({ "obj" }) end)
      log(coroutine.resume(co))
      log(coroutine.close(co))
      local w = coroutine.wrap(function()
        local _ <close> = closer("w")
        error("wrapped")
      end)
      log(pcall(w))
      log(pcall(coroutine.close, coroutine.running()))
      local me
      me = coroutine.create(function()
        local inner = coroutine.create(function() log(pcall(coroutine.close, me)) end)
        coroutine.resume(inner)
        log(pcall(coroutine.close, coroutine.running()))
      end)
      coroutine.resume(me)
      log(coroutine.close(coroutine.create(print)))
    end)
    assert.matches("cannot close a running coroutine", out)
    assert.matches("cannot close a normal coroutine", out)
  end)

  it("yields across pcall, metamethods and for-iterators", function()
    same(function(log)
      local co = coroutine.create(function()
        local ok, v = pcall(function() return coroutine.yield("in pcall") + 1 end)
        log("pcall", ok, v)
        local ok2, e = pcall(function() coroutine.yield("before error"); error("after") end)
        log("pcall err", ok2, e)
        local t = setmetatable({}, { __index = function(_, k) return coroutine.yield("index " .. k) end,
                                     __add = function() return coroutine.yield("add") end,
                                     __lt = function() return coroutine.yield("lt") end,
                                     __concat = function() return coroutine.yield("concat") end })
        log("index", t.foo)
        log("add", t + 1)
        log("lt", t < t)
        log("concat", t .. "x")
        for i, sq in coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i, i * i) end end) do
          log("for", i, sq)
        end
        local ok3, r = xpcall(function() return coroutine.yield("xpcall") end, debug.traceback)
        log("xpcall", ok3, r)
        return "end"
      end)
      local v = 0
      while coroutine.status(co) ~= "dead" do
        v = v + 1
        log(coroutine.resume(co, v))
      end
    end)
  end)

  it("leaves running, status and isyieldable unchanged", function()
    same(function(log)
      local main, ismain = coroutine.running()
      log(type(main), ismain, coroutine.isyieldable(), coroutine.status(main))
      local co
      co = coroutine.create(function()
        local me, im = coroutine.running()
        log(me == co, im, coroutine.isyieldable(), coroutine.status(co), coroutine.status(main))
        coroutine.yield()
      end)
      log(coroutine.status(co))
      coroutine.resume(co)
      log(coroutine.status(co), coroutine.isyieldable(co))
      coroutine.resume(co)
      log(coroutine.status(co))
    end)
  end)

  it("raises C stack overflow for runaway nested resumes", function()
    local out = same(function(log)
      local function nest(n)
        local co = coroutine.create(function() return nest(n + 1) end)
        local ok, err = coroutine.resume(co)
        if not ok then error(err, 0) end
        return err
      end
      local ok, err = pcall(nest, 1)
      log(ok, (tostring(err):gsub("^.-:%d+: ", ""):match("C stack overflow") or err))
    end)
    assert.matches("C stack overflow", out)
  end)

  it("keeps behaving after uninstall for coroutines suspended while installed", function()
    ai.install()
    local co = coroutine.create(function(a) local b = coroutine.yield(a); return b end)
    local w = coroutine.wrap(function() coroutine.yield(1); return 2 end)
    assert.same({ true, 5 }, { coroutine.resume(co, 5) })
    assert.are.equal(1, w())
    ai.uninstall()
    assert.same({ true, 7 }, { coroutine.resume(co, 7) })
    assert.are.equal(2, w())
    assert.same({ false, "cannot resume dead coroutine" }, { coroutine.resume(co) })
    ai.install()
  end)
end)
