-- compress-wrk.lua: the shared harness's wrk.lua (its request modes and WRKJSON report
-- line, path in PERF_WRK_LUA) with an Accept-Encoding header on every request
-- (WRK_ACCEPT_ENCODING, default "gzip, br"). Used by benches/compress.sh.
dofile(os.getenv("PERF_WRK_LUA"))
wrk.headers["Accept-Encoding"] = os.getenv("WRK_ACCEPT_ENCODING") or "gzip, br"
