-- Shared by the benchmark's wrk scripts (loaded with dofile, so it sets globals).
--
-- wrk runs one Lua state per thread plus one for setup() and done(). Per-thread
-- tallies live in each thread's globals; done() runs in the main state and reads
-- them through the thread handles setup() collected. The result goes to stdout as
-- one line, RESULT_PREFIX then JSON, so the harness can pick it out of wrk's output.

RESULT_PREFIX = "BENCH_RESULT "

-- The latency percentiles reported, enough points to draw the distribution's tail.
PERCENTILES = { 50, 60, 70, 75, 80, 85, 90, 95, 97.5, 99, 99.5, 99.9 }

function read_file(path)
   local file = assert(io.open(assert(path, "a body file must be named"), "rb"))
   local content = file:read("*a")
   file:close()
   return content
end

threads = {}

function setup(thread)
   table.insert(threads, thread)
end

-- Adds up every thread's global table `name` of counts. It must be flat: wrk's
-- thread:get crashes copying a table that holds tables, so nested tallies are kept
-- under compound keys instead.
function merged(name)
   local total = {}
   for _, thread in ipairs(threads) do
      for key, count in pairs(thread:get(name) or {}) do
         total[key] = (total[key] or 0) + count
      end
   end
   return total
end

local function encode(value)
   local kind = type(value)
   if kind == "table" then
      local parts = {}
      for key, item in pairs(value) do
         parts[#parts + 1] = encode(tostring(key)) .. ":" .. encode(item)
      end
      return "{" .. table.concat(parts, ",") .. "}"
   elseif kind == "number" then
      -- NaN and infinities (e.g. the deviation of no samples) are not JSON.
      if value ~= value or value == math.huge or value == -math.huge then
         return "null"
      end
      return string.format("%.17g", value)
   elseif kind == "string" then
      return '"' .. value:gsub('[%c"\\]', function(c)
         return string.format("\\u%04x", c:byte())
      end) .. '"'
   elseif kind == "boolean" then
      return tostring(value)
   end
   return "null"
end

-- What every script reports: wrk's counts, socket errors and latency (microseconds).
function report(summary, latency, extra)
   local percentiles = {}
   for _, p in ipairs(PERCENTILES) do
      percentiles[tostring(p)] = latency:percentile(p)
   end
   local result = {
      requests = summary.requests,
      duration_us = summary.duration,
      bytes = summary.bytes,
      errors = summary.errors,
      latency_us = {
         min = latency.min,
         max = latency.max,
         mean = latency.mean,
         stdev = latency.stdev,
         percentiles = percentiles,
      },
   }
   for key, value in pairs(extra) do
      result[key] = value
   end
   io.write(RESULT_PREFIX, encode(result), "\n")
end
