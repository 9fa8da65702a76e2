local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local consume = ARGV[3] == '1'
local out = {1, 0}
local writes = {}
local ttls = {}
local allowed = true
local retry = 0
local function next_unit(tat, t)
  if tat <= now then return 0 end
  local p = (tat - now) % t
  if p == 0 then return t end
  return p
end
for i = 1, #KEYS do
  local base = 3 + (i - 1) * 4
  local kind = ARGV[base + 1]
  local a = tonumber(ARGV[base + 2])
  local b = tonumber(ARGV[base + 3])
  local c = tonumber(ARGV[base + 4])
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  local remaining, reset, exceeded
  if kind == 'r' then
    local tat = math.max(cur, now)
    local new_tat = tat + a * cost
    local horizon = now + a * b
    if new_tat <= horizon then
      writes[i] = new_tat
      ttls[i] = new_tat - now
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
      writes[i] = cur + cost
      ttls[i] = reset
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
if allowed and consume then
  for i = 1, #KEYS do
    local ms = math.max(1, math.ceil(ttls[i] / 1000) + 1000)
    redis.call('SET', KEYS[i], string.format('%.0f', writes[i]), 'PX', string.format('%.0f', ms))
  end
end
if not allowed then out[1] = 0 end
out[2] = retry
return out
