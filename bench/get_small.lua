-- get_small.lua: GET / over keep-alive connections. The demo backend answers "<id>\n" (3 bytes), so this measures
-- per-request overhead: parsing, picking a backend, two socket round trips.
-- Usage: wrk -s bench/get_small.lua http://127.0.0.1:8080
wrk.method = "GET"
wrk.path = "/"

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local ok, report = pcall(require, "report")
if ok then report.install() end
