-- Outcome reports (docs/operations.md) for the proxies of the seeded accounts (`multiprovider seed`:
-- gw0…gw9 of carrier0…carrier99, 1,000 proxies), BATCH reports per request, each connection
-- pausing DELAY_MS between requests so that the rate is fixed (about connections × 1000 /
-- DELAY_MS requests a second). One carrier's first gateway in ten always fails (ten proxies
-- go down and stay down, so answers are reordered); other reports fail one time in twenty.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")
local batch = tonumber(os.getenv("BATCH") or "50")
local pause = tonumber(os.getenv("DELAY_MS") or "10")
local auth = "Bearer " .. os.getenv("ENGINE_TOKEN")
local headers = {["Authorization"] = auth, ["Content-Type"] = "application/json"}

make_pool(function()
  local items = {}
  for k = 1, batch do
    local c, j = math.random(0, 99), math.random(0, 9)
    local outcome = "success"
    if (j == 0 and c < 10) or math.random() < 0.05 then outcome = "failure" end
    items[k] = string.format('{"proxy":"gw%d.carrier%d.example.net:5060","outcome":"%s"}', j, c, outcome)
  end
  return wrk.format("POST", "/v1/outcomes", headers, "[" .. table.concat(items, ",") .. "]")
end)

function delay()
  return pause
end
