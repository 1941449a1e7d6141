-- GET one product, anonymously. No request()/response() functions here on purpose: wrk
-- then sends its pre-built request without calling into Lua, so the client stays cheap.
-- Non-2xx/3xx responses are still counted by wrk (errors.status).
dofile(os.getenv("BENCH_LUA_DIR") .. "/report.lua")
