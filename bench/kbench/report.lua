-- wrk script for kbench: sets the request from the environment and, when wrk is done, prints
-- one line `KBENCH {json}` with the figures the harness needs (latencies in microseconds).
local method = os.getenv("KBENCH_METHOD") or "GET"
local body_bytes = tonumber(os.getenv("KBENCH_BODY_BYTES") or "0")

wrk.method = method
if body_bytes > 0 then
   wrk.body = string.rep("x", body_bytes)
   wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
   local errors = summary.errors
   io.write(string.format(
      'KBENCH {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d, ' ..
      '"mean_us": %f, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
      summary.requests, summary.duration, summary.bytes,
      errors.connect, errors.read, errors.write, errors.status, errors.timeout,
      latency.mean, latency:percentile(50), latency:percentile(99), latency.max))
end
