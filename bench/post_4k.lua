-- post_4k.lua: POST of a 4 KiB body (Content-Length) over keep-alive connections. The demo backend reads and
-- discards it and answers "<id>\n".
-- Usage: wrk -s bench/post_4k.lua http://127.0.0.1:8080
wrk.method = "POST"
wrk.path = "/"
wrk.body = string.rep("x", 4096)
wrk.headers["Content-Type"] = "application/octet-stream"

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local ok, report = pcall(require, "report")
if ok then report.install() end
