-- Shared by the wrk scripts: at the end of a run, print wrk's totals, latency percentiles
-- and (when the script counts them) response statuses as one line for bench/probe.py:
--   BENCH_JSON {"requests":..., "latency_us":{"p50":...}, "statuses":{"201":...}, ...}

threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local function json_string(s)
   s = string.gsub(s, '[%c"\\]', function(c)
      if c == '"' then return '\\"' end
      if c == '\\' then return '\\\\' end
      return string.format("\\u%04x", string.byte(c))
   end)
   return '"' .. s .. '"'
end

function done(summary, latency, requests)
   local statuses, samples = {}, {}
   for _, t in ipairs(threads) do
      for code, n in pairs(t:get("statuses") or {}) do
         statuses[code] = (statuses[code] or 0) + n
      end
      for code, body in pairs(t:get("error_samples") or {}) do
         samples[code] = samples[code] or body
      end
   end
   local s, e = {}, {}
   for code, n in pairs(statuses) do table.insert(s, string.format('"%s":%d', code, n)) end
   for code, body in pairs(samples) do
      table.insert(e, string.format('"%s":%s', code, json_string(string.sub(body, 1, 400))))
   end
   local err = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d},' ..
      '"statuses":{%s},"error_samples":{%s}}\n',
      summary.requests, summary.duration, summary.bytes,
      err.connect, err.read, err.write, err.status, err.timeout,
      latency.mean, latency.stdev, latency.max,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      table.concat(s, ","), table.concat(e, ",")))
end
