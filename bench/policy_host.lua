-- wrk script for bench/policy_host.sh: every request asks for the policy of a random hosted
-- domain (Host: mta-sts.<domain>), picked from the file given after `--`.
-- Requests are built once per thread in init(), so the client spends its time sending.

local requests = {}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  local path = args[1]
  local f = assert(io.open(path, "r"))
  for name in f:lines() do
    if name ~= "" then
      requests[#requests + 1] = wrk.format("GET", "/.well-known/mta-sts.txt",
        { ["Host"] = "mta-sts." .. name })
    end
  end
  f:close()
  assert(#requests > 0, "no host names in " .. path)
  math.randomseed(os.time() * 1000 + (thread_id or 0))
end

function request()
  return requests[math.random(#requests)]
end
