-- wrk script: every request asks for a different user, so every one is a cache miss.
-- PATH_PREFIX and PATH_SUFFIX frame the user id; set with wrk's -s and environment.
local counter = 0
local prefix = os.getenv("PATH_PREFIX") or "/token/bench-user-"
local suffix = os.getenv("PATH_SUFFIX") or ""
local run = os.getenv("RUN_ID") or "0"

request = function()
    counter = counter + 1
    return wrk.format("GET", prefix .. run .. "-" .. counter .. suffix)
end
