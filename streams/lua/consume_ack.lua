-- Ack a batch in one step and let each entry leave its aggregate's order list.
-- KEYS[1] topic partition; ARGV[1] group, ARGV[2] order-list key prefix,
-- then pairs (entry id, aggregate or '').
local ids = {}
for i = 3, #ARGV, 2 do
  ids[#ids + 1] = ARGV[i]
  if ARGV[i + 1] ~= '' then redis.call('LREM', ARGV[2] .. ARGV[i + 1], 1, ARGV[i]) end
end
if #ids == 0 then return 0 end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
