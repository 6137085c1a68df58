-- The bare server: a health probe through the same router and middleware, sent by the same
-- request loop as the lookups.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")

make_pool(function()
  return wrk.format("GET", "/health/live")
end)
