local now = tonumber(ARGV[1])
local checks = tonumber(ARGV[2])
local commit = ARGV[3] == '1'
local out = {}
local seen = {}
local writes = {}
local order = {}
local arg = 4
local k = 1
local function next_unit(tat, t)
  if tat <= now then return 0 end
  local p = (tat - now) % t
  if p == 0 then return t end
  return p
end
for _ = 1, checks do
  local cost = tonumber(ARGV[arg])
  local consume = ARGV[arg + 1] == '1'
  local shadow = ARGV[arg + 2] == '1'
  local n = tonumber(ARGV[arg + 3])
  arg = arg + 4
  local head = #out + 1
  out[head] = 1
  out[head + 1] = 0
  local allowed = true
  local retry = 0
  local pending = {}
  for _ = 1, n do
    local key = KEYS[k]
    local kind = ARGV[arg]
    local a = tonumber(ARGV[arg + 1])
    local b = tonumber(ARGV[arg + 2])
    local c = tonumber(ARGV[arg + 3])
    k = k + 1
    arg = arg + 4
    local cur = seen[key]
    if cur == nil then
      cur = tonumber(redis.call('GET', key) or '0') or 0
    end
    local remaining, reset, exceeded
    if kind == 'r' then
      local tat = math.max(cur, now)
      local new_tat = tat + a * cost
      local horizon = now + a * b
      if new_tat <= horizon then
        pending[#pending + 1] = {key, new_tat, new_tat - now}
        remaining = math.floor((horizon - new_tat) / a)
        reset = next_unit(new_tat, a)
        exceeded = 0
      else
        allowed = false
        retry = math.max(retry, new_tat - horizon)
        remaining = math.max(0, math.floor((horizon - tat) / a))
        reset = next_unit(tat, a)
        exceeded = 1
      end
    else
      reset = c - now
      if cur + cost <= a then
        pending[#pending + 1] = {key, cur + cost, reset}
        remaining = a - cur - cost
        exceeded = 0
      else
        allowed = false
        retry = math.max(retry, reset)
        remaining = math.max(0, a - cur)
        exceeded = 1
      end
    end
    out[#out + 1] = remaining
    out[#out + 1] = reset
    out[#out + 1] = exceeded
  end
  if not allowed then
    out[head] = 0
    if not shadow then commit = false end
  end
  out[head + 1] = retry
  if allowed and consume then
    for _, w in ipairs(pending) do
      if writes[w[1]] == nil then order[#order + 1] = w[1] end
      seen[w[1]] = w[2]
      writes[w[1]] = w
    end
  end
end
if commit then
  for _, key in ipairs(order) do
    local w = writes[key]
    local ms = math.max(1, math.ceil(w[3] / 1000) + 1000)
    redis.call('SET', key, string.format('%.0f', w[2]), 'PX', string.format('%.0f', ms))
  end
end
return out
