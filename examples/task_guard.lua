--- Track blocks of ordinary code as tasks with `ai.task` guards.
--
-- A guard is a to-be-closed value: the block's task completes when the block is left
-- normally and fails, with the error, when an error leaves it. Guards work on the main
-- thread and inside coroutines (there the coroutine's task is the parent).
--
-- Run: lua5.4 examples/task_guard.lua
local ai = require "async_inspect"

local function load_config(path)
  local _ <close> = ai.task("load config")
  ai.point("reading", path)
  return { workers = 2, migrations = 3 }
end

local function migrate(step)
  local _ <close> = ai.task("migration " .. step)
  if step == 3 then error("migration 3: column 'email' already exists", 0) end
end

local config = load_config("app.conf")

-- a failing block: the error still reaches pcall, and the task records it
for step = 1, config.migrations do
  local ok, err = pcall(migrate, step)
  if not ok then print("migration failed: " .. err) end
end

-- a block inside a coroutine, open across a yield
local worker = coroutine.wrap(function()
  local _ <close> = ai.task("warm cache")
  coroutine.yield("warming")
  return "warm"
end)
print("worker says " .. worker())
print("worker says " .. worker())

-- a guard ended explicitly, without a block
local flush = ai.task("flush logs")
flush:complete()

print()
for _, t in ipairs(ai.tasks()) do
  print(("#%d %-14s %-9s %-9s %s"):format(t.id, t.name, t.kind, t.state, t.error or ""))
end
print(ai.report.summary())

-- what this example shows, checked
local by_name = {}
for _, t in ipairs(ai.tasks()) do by_name[t.name] = t end
assert(by_name["load config"].state == "completed")
assert(by_name["migration 3"].state == "failed" and by_name["migration 3"].error:find("email"))
assert(by_name["warm cache"].kind == "block" and by_name["warm cache"].parent ~= nil)
assert(by_name["flush logs"].state == "completed")
