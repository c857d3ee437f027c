-- wrk script: every request is a first contact from a MAC never seen before.
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  n = 0
end
function request()
  n = n + 1
  local path = string.format("/pxe/02:%02x:%02x:%02x:%02x:%02x", tid % 256,
    math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  return wrk.format("GET", path)
end
