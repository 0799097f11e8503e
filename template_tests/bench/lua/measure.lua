-- The load of the latency and throughput phases: one fixed JSON POST, repeated.
-- BENCH_BODY_FILE names the body; the URL given to wrk names the route. Statuses are
-- counted per thread so the harness can fail the run on any non-2xx answer (wrk
-- itself only counts statuses from 400 up).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = read_file(os.getenv("BENCH_BODY_FILE"))

function init(args)
   statuses = {}
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, _)
   report(summary, latency, { statuses = merged("statuses") })
end
