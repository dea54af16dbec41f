-- wrk script: cycles through the users that distinct_users.lua asked for in run RUN_ID (1 to USERS),
-- so that every request is for a user asked before. PATH_PREFIX as in distinct_users.lua.
local counter = 0
local users = tonumber(os.getenv("USERS") or "10000")
local prefix = os.getenv("PATH_PREFIX") or "/token/bench-user-"
local run = os.getenv("RUN_ID") or "0"

request = function()
    counter = counter % users + 1
    return wrk.format("GET", prefix .. run .. "-" .. counter)
end
