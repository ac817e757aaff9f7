-- Bench material: the wrk script every contender is loaded with (bench/load.py runs it).
-- wrk script: POST a realistic MPS notification, each request a new TaskId (so no dedupe hides work).
-- env: BODY_FILE (template with __TASKID__, __TS__, __SIGN__), URL path in wrk's argument.
local threads = {}
local counter = 0
tid = 0
local template, ts, sign

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
  template = f:read("*a")
  f:close()
  ts = os.getenv("MPS_TS") or "0"
  sign = os.getenv("MPS_SIGN") or ""
  template = template:gsub("__TS__", ts):gsub("__SIGN__", sign)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = template:gsub("__TASKID__", string.format("2400%d-WorkflowTask-bench%d-%d", tid, tid, counter))
  return wrk.format(nil, nil, nil, body)
end

done = function(summary, latency, requests)
  local errs = summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d errors=%d non2xx=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, errs, summary.errors.status))
end
