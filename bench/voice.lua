-- Voice-route lookups for random seeded accounts, with destinations that really match one
-- of the sample proxies (`multiprovider seed`: proxy j takes +<code j>…, the last one the rest).
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")
local n = tonumber(os.getenv("ACCOUNTS"))
local auth = "Bearer " .. os.getenv("ENGINE_TOKEN")
local codes = {"1", "44", "49", "33", "34", "39", "31", "46", "61", "7"}

make_pool(function()
  local sid = string.format("AC%032x", math.random(0, n - 1) + 1)
  local to = "%2B" .. codes[math.random(1, #codes)] .. tostring(math.random(1000000, 99999999))
  return wrk.format("GET", "/v1/accounts/" .. sid .. "/voice-route?to=" .. to, {["Authorization"] = auth})
end)
