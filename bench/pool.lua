-- Shared by the lookup scripts: each wrk thread formats POOL requests (default 65,536)
-- before the clock starts and then cycles through them, so the per-request cost of the
-- load generator is the same for every route — a table read — and the server, not wrk's
-- Lua, is what the run measures. `build(i)` returns request i of the pool.
local pool = {}
local next_index = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function make_pool(build)
  function init(args)
    math.randomseed(os.time() * 100 + (thread_id or 0))
    local size = tonumber(os.getenv("POOL") or "65536")
    for i = 1, size do
      pool[i] = build(i)
    end
  end

  function request()
    next_index = next_index % #pool + 1
    return pool[next_index]
  end
end
