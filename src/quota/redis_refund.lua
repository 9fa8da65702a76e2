local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local kind = ARGV[1 + (i - 1) * 2 + 1]
  local t = tonumber(ARGV[1 + (i - 1) * 2 + 2])
  local cur = tonumber(redis.call('GET', KEYS[i]) or '')
  if cur then
    local new
    if kind == 'r' then
      new = math.max(0, cur - t * cost)
    else
      new = math.max(0, cur - cost)
    end
    redis.call('SET', KEYS[i], string.format('%.0f', new), 'KEEPTTL')
  end
end
return 1
