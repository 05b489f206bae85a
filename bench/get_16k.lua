-- get_16k.lua: GET of a 16 KiB response over keep-alive connections: the demo backend's /?bytes=16384.
-- Measures body streaming (several reads and writes per response) rather than per-request overhead.
-- Usage: wrk -s bench/get_16k.lua http://127.0.0.1:8080
wrk.method = "GET"
wrk.path = "/?bytes=16384"

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local ok, report = pcall(require, "report")
if ok then report.install() end
