-- wrk script: POST the order with the credential given in the environment.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local name, value = os.getenv("PALISADE_HEADER"):match("^([^:]+):%s*(.*)$")
wrk.headers[name] = value
local f = io.open(os.getenv("PALISADE_BODY"), "r")
wrk.body = f:read("*a")
f:close()
