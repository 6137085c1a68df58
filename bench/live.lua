-- The bare server: a health probe through the same router and middleware.
request = function()
  return wrk.format("GET", "/health/live")
end
