-- mixed.lua: a mix over keep-alive connections, chosen per request with fixed weights:
--   70% small GET /, 20% GET /?bytes=16384, 10% POST / with a 4 KiB body.
-- Each wrk thread seeds its own generator from its id, so runs repeat the same sequence.
-- Usage: wrk -s bench/mixed.lua http://127.0.0.1:8080
local small, large, post

local thread_count = 0
function setup(thread)
   thread_count = thread_count + 1
   thread:set("seed", thread_count)
end

function init(args)
   math.randomseed(seed or 1)
   small = wrk.format("GET", "/")
   large = wrk.format("GET", "/?bytes=16384")
   post = wrk.format("POST", "/", { ["Content-Type"] = "application/octet-stream" }, string.rep("x", 4096))
end

function request()
   local r = math.random(100)
   if r <= 70 then return small end
   if r <= 90 then return large end
   return post
end

local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local ok, report = pcall(require, "report")
if ok then report.install() end
