-- SMS-route lookups for random seeded accounts.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")
local n = tonumber(os.getenv("ACCOUNTS"))
local auth = "Bearer " .. os.getenv("ENGINE_TOKEN")

make_pool(function()
  local sid = string.format("AC%032x", math.random(0, n - 1) + 1)
  return wrk.format("GET", "/v1/accounts/" .. sid .. "/sms-route", {["Authorization"] = auth})
end)
