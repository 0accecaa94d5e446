-- Heartbeat: record that the consumer is alive and reset the idle time of every entry it
-- owns, so a slow but alive consumer is never robbed by a claimer's min-idle rule.
-- KEYS[1] topic partition, KEYS[2] heartbeat hash; ARGV[1] group, ARGV[2] consumer, ARGV[3] now ms
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local start = '-'
local touched = 0
while true do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], start, '+', 500, ARGV[2])
  if #p == 0 then break end
  local ids = {}
  for i, e in ipairs(p) do ids[i] = e[1] end
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids), 'JUSTID')
  touched = touched + #ids
  if #p < 500 then break end
  start = '(' .. ids[#ids]
end
return touched
