-- wrk script: adds a Host header when WRK_HOST is set and prints one JSON line the harness parses.
local host = os.getenv("WRK_HOST")
if host and host ~= "" then wrk.headers["Host"] = host end
if os.getenv("WRK_CLOSE") == "1" then wrk.headers["Connection"] = "close" end
local post = tonumber(os.getenv("WRK_POST_BYTES") or "")
if post then
  wrk.method = "POST"
  wrk.body = string.rep("p", post)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
