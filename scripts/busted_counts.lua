-- Reads busted's JSON output; prints "passed failed" (or the failures with --failures).
local cjson = require "cjson"
local f = assert(io.open(arg[1], "rb"))
local text = f:read("a")
f:close()
-- busted may print other lines before the JSON document
local start = text:find("{\"", 1, true) or text:find("{", 1, true)
if not start then os.exit(1) end
local ok, doc = pcall(cjson.decode, text:sub(start))
if not ok or type(doc) ~= "table" then os.exit(1) end
local failed = #(doc.failures or {}) + #(doc.errors or {})
if arg[2] == "--failures" then
  for _, kind in ipairs({ "failures", "errors" }) do
    for _, e in ipairs(doc[kind] or {}) do
      local where = e.trace and e.trace.short_src and (e.trace.short_src .. ":" .. tostring(e.trace.currentline)) or ""
      print(("FAIL %s %s\n  %s"):format(e.name or "?", where, tostring(e.message)))
    end
  end
  os.exit(0)
end
print(#(doc.successes or {}), failed)
