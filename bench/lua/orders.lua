-- POST /api/v1/orders: one line item (quantity 1) paid with the sandbox card that succeeds.
--
-- Arguments (after `--` on the wrk command line): a file of bearer tokens, one per line
-- (pre-registered customers), and a file of SKUs. Each wrk thread takes every n-th token
-- and cycles through its own requests, so consecutive orders come from different
-- customers and no two threads share a customer. Requests are built once, in init().
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")

local CARD = "4242424242424242"
local prepared = {}
local next_index = 0
statuses = {}
error_samples = {}

local function read_lines(path)
   local out = {}
   local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
   for line in f:lines() do
      if line ~= "" then table.insert(out, line) end
   end
   f:close()
   return out
end

function init(args)
   local tokens = read_lines(args[1])
   local skus = read_lines(args[2])
   local nthreads = tonumber(args[3])
   assert(#tokens >= nthreads, "need at least one customer token per wrk thread")
   for i = id + 1, #tokens, nthreads do
      local sku = skus[(i - 1) % #skus + 1]
      local body = string.format(
         '{"line_items":[{"sku":"%s","quantity":1}],"payment":{"card_number":"%s"}}', sku, CARD)
      table.insert(prepared, wrk.format("POST", "/api/v1/orders",
         { ["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json" }, body))
   end
end

function request()
   next_index = next_index % #prepared + 1
   return prepared[next_index]
end

function response(status, headers, body)
   local code = tostring(status)
   statuses[code] = (statuses[code] or 0) + 1
   if status >= 300 and error_samples[code] == nil then
      error_samples[code] = body or ""
   end
end
