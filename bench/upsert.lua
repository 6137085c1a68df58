-- Admin upserts (the documented collection POST) of random seeded accounts, each a
-- ten-proxy configuration; BODY_TAIL is `&ConfigurationData=<url-encoded JSON>`.
local n = tonumber(os.getenv("ACCOUNTS"))
local auth = os.getenv("ADMIN_AUTH")
local tail = os.getenv("BODY_TAIL")
local headers = {["Authorization"] = auth, ["Content-Type"] = "application/x-www-form-urlencoded"}

request = function()
  local sid = string.format("AC%032x", math.random(0, n - 1) + 1)
  local body = "ExtensionName=multi_provider&Enabled=true&AccountSid=" .. sid .. tail
  return wrk.format("POST", "/2012-04-24/ExtensionsConfiguration.json", headers, body)
end
