-- Heartbeat: record that the consumer is alive and reset the idle time of every entry it
-- owns, so a slow but alive consumer is never robbed by a claimer's min-idle rule.
-- KEYS[1] topic partition, KEYS[2] heartbeat hash; ARGV[1] group, ARGV[2] consumer, ARGV[3] now ms
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
local start = '-'
local touched = 0
while true do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], start, '+', 500, ARGV[2])
  if #p == 0 then break end
  -- unpack expands to every value only in last position: the ids and JUSTID in one table
  local args = {}
  for _, e in ipairs(p) do args[#args + 1] = e[1] end
  args[#args + 1] = 'JUSTID'
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(args))
  touched = touched + #p
  if #p < 500 then break end
  start = '(' .. p[#p][1]
end
return touched
