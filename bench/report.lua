-- report.lua: the done() shared by the bench scripts. After wrk's own summary it prints one line,
--   BENCH {"requests": ..., "p50_us": ..., ...}
-- that bench/run parses, so no one has to scrape wrk's human-readable units. Latencies are in microseconds.
-- wrk counts a response with status > 399 in errors.status ("Non-2xx or 3xx responses").
local M = {}

function M.done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
      '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, "status_errors": %d, ' ..
      '"p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
      latency.max, latency.mean))
end

-- Each script calls this with its own path, so `wrk -s bench/x.lua` works from any directory. If report.lua
-- cannot be found the script still runs; only the BENCH line is missing.
function M.install()
   done = M.done
end

return M
