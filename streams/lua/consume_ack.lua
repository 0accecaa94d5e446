-- Ack a batch in one step and let each entry leave its aggregate's order list.
-- KEYS[1] topic partition; ARGV[1] group, ARGV[2] order-list key prefix, ARGV[3] the entry ids
-- joined by ',', ARGV[4] the byte length of each entry's aggregate (0 = none) joined by ',',
-- ARGV[5] the aggregates concatenated (whole-batch arguments: see consume_register.lua).
local ids, aggs, pos, prefix = {}, ARGV[5], 1, ARGV[2]
local lengths = string.gmatch(ARGV[4], '%d+')
for id in string.gmatch(ARGV[3], '[^,]+') do
  ids[#ids + 1] = id
  local len = tonumber(lengths() or '0')
  if len > 0 then
    redis.call('LREM', prefix .. string.sub(aggs, pos, pos + len - 1), 1, id)
    pos = pos + len
  end
end
if #ids == 0 then return 0 end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
