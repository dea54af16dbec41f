-- wrk script: cycles through USERS user ids (default 10000), from OFFSET, so that after one round
-- every request is for a user asked before.
local counter = tonumber(os.getenv("OFFSET") or "0")
local users = tonumber(os.getenv("USERS") or "10000")
local prefix = os.getenv("PATH_PREFIX") or "/token/restart-user-"

request = function()
    counter = counter + 1
    return wrk.format("GET", prefix .. (counter % users))
end
