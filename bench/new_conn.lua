-- new_conn.lua: one request per client connection. Every request carries "Connection: close"; the proxy answers
-- and closes, and wrk opens a new connection for the next request. Measures accept/close cost; the proxy's
-- upstream connections are still pooled.
-- Usage: wrk -s bench/new_conn.lua http://127.0.0.1:8080
wrk.method = "GET"
wrk.path = "/"
wrk.headers["Connection"] = "close"

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local ok, report = pcall(require, "report")
if ok then report.install() end
