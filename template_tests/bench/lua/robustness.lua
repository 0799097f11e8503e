-- The robustness round: valid and invalid requests mixed on the same keep-alive
-- connections, at speed. BENCH_CASES lists case names in the order to cycle through;
-- BENCH_CASES_DIR/<name>.json holds each body. The harness runs one connection per
-- thread, and wrk asks a connection for its next request only once the previous one
-- was answered, so a response belongs to the case the thread asked for last. (wrk
-- also calls request() once on the first thread to check the script, before any
-- connection is open; that call is simply superseded.)
--
-- Tallied per thread: responses by case and status (keyed "<case> <status>"), error
-- bodies larger than BENCH_MAX_ERROR_BODY bytes, and error bodies that contain
-- BENCH_CANARY, a marker every invalid body carries, so an answer that echoes the
-- input is caught. The harness judges the tallies; this script only counts.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local names = {}
for name in os.getenv("BENCH_CASES"):gmatch("[^,]+") do
   names[#names + 1] = name
end
local directory = os.getenv("BENCH_CASES_DIR")
local max_error_body = tonumber(os.getenv("BENCH_MAX_ERROR_BODY"))
local canary = os.getenv("BENCH_CANARY")

local wrapped_setup = setup
function setup(thread)
   wrapped_setup(thread)
   -- Threads start at different cases, so every case is in flight at once.
   thread:set("first_case", #threads)
end

function init(args)
   formatted = {}
   for index, name in ipairs(names) do
      local body = read_file(directory .. "/" .. name .. ".json")
      formatted[index] = wrk.format("POST", nil, { ["Content-Type"] = "application/json" }, body)
   end
   next_case = first_case or 0
   last_case = "none"
   outcomes, large_error_bodies, echoed_inputs = {}, {}, {}
end

function request()
   local index = next_case % #names + 1
   next_case = next_case + 1
   last_case = names[index]
   return formatted[index]
end

function response(status, headers, body)
   local name = last_case
   local outcome = name .. " " .. status
   outcomes[outcome] = (outcomes[outcome] or 0) + 1
   if status >= 400 then
      if #body > max_error_body then
         large_error_bodies[name] = (large_error_bodies[name] or 0) + 1
      end
      if body:find(canary, 1, true) then
         echoed_inputs[name] = (echoed_inputs[name] or 0) + 1
      end
   end
end

function done(summary, latency, _)
   report(summary, latency, {
      outcomes = merged("outcomes"),
      large_error_bodies = merged("large_error_bodies"),
      echoed_inputs = merged("echoed_inputs"),
   })
end
