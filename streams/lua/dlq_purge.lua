-- Purge (skip) dead letters of one group: delete them and release the place they held in their
-- aggregate's order (entries waiting behind a purged entry see it neither pending nor held:
-- they flow again).
-- KEYS[1] dead-letter stream, KEYS[2] held hash, KEYS[3] tails hash; ARGV dead-letter ids.
local n = 0
for i = 1, #ARGV do
  local dl = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #dl == 1 then
    local f = dl[1][2]
    local meta = {}
    for j = 1, #f, 2 do meta[f[j]] = f[j + 1] end
    local agg, old = meta['aggregate'], meta['entry_id']
    if agg and agg ~= '' and redis.call('HGET', KEYS[3], agg) == old then
      redis.call('HDEL', KEYS[3], agg)
    end
    redis.call('HDEL', KEYS[2], old)
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
