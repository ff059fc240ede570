-- luv worker threads keep working with async_inspect loaded, and each of their Lua states
-- may load it on its own: a uv.new_thread body that requires async_inspect (and runs tracked
-- tasks on its thread's loop) and a uv.new_work job that tracks its coroutines report their
-- own figures back.
local ai = require "async_inspect"
local aio = require "async_inspect.luv"
local uv = require "luv"
local luv_loop = require "spec.support.luv_loop"

local open_handles = luv_loop.open_handles

describe("async_inspect.luv and luv worker threads", function()
  before_each(function() ai.reset() end)

  after_each(function()
    uv.run()
    assert.are.same({}, open_handles())
  end)

  it("lets a uv.new_thread body track its own coroutines and tasks", function()
    local got
    local async
    async = uv.new_async(function(...)
      got = table.pack(...)
      async:close()
    end)
    local thread = uv.new_thread(function(reply)
      local tai = require "async_inspect"
      local taio = require "async_inspect.luv"
      -- plain coroutines
      for _ = 1, 5 do
        local co = coroutine.create(function() coroutine.yield() end)
        coroutine.resume(co)
        coroutine.resume(co)
      end
      -- tracked tasks on this thread's own loop
      local sum = taio.run(function()
        local hs = {}
        for i = 1, 10 do hs[i] = taio.spawn("worker", function() taio.sleep(2); return i end) end
        local s = 0
        for i = 1, 10 do s = s + hs[i]:join() end
        return s
      end)
      local st = tai.stats()
      local named = #tai.tasks{ name = "^worker$" }
      reply:send(sum, st.tasks, st.completed, named, coroutine.resume == tai.core.hooks.resume)
    end, async)
    uv.run()
    thread:join()
    assert.are.equal(55, got[1])
    assert.are.equal(16, got[2]) -- 5 coroutines, main and 10 workers
    assert.are.equal(16, got[3])
    assert.are.equal(10, got[4])
    assert.is_true(got[5])
    -- this state's records know nothing of the thread's
    assert.are.equal(0, #ai.tasks{ name = "^worker$" })
  end)

  it("runs uv.new_work jobs that load async_inspect", function()
    local results = {}
    aio.run(function()
      local work = uv.new_work(function(n)
        local wai = require "async_inspect"
        local done = 0
        for _ = 1, n do
          local co = coroutine.wrap(function() coroutine.yield(1) return 2 end)
          done = done + co() + co()
        end
        return done, wai.stats().completed
      end, function(total, completed)
        results[#results + 1] = { total, completed }
      end)
      for _ = 1, 4 do assert(work:queue(25)) end
      -- the main state goes on tracking its own tasks meanwhile
      local h = aio.spawn("alongside", function() aio.sleep(5); return "ok" end)
      assert.are.equal("ok", h:join())
      while #results < 4 do aio.sleep(2) end
    end)
    assert.are.equal(4, #results)
    for _, r in ipairs(results) do
      assert.are.equal(75, r[1])
      assert.is_true(r[2] >= 25)
    end
  end)
end)
