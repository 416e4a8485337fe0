-- wrk script for `make bench` (scripts/bench.py).
-- BENCH_BODY_BYTES > 0: POST a JSON body of exactly that many bytes; otherwise GET.
-- At the end prints one line `BENCH_RESULT {json}` that bench.py parses.

local size = tonumber(os.getenv("BENCH_BODY_BYTES") or "0")

if size > 0 then
  local head, tail = '{"data":"', '"}'
  wrk.method = "POST"
  wrk.body = head .. string.rep("x", size - #head - #tail) .. tail
  wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
