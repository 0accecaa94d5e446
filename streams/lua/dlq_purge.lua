-- Purge (skip) dead letters of one group: delete them and release the place they held in their
-- aggregate's order list, so later entries of that aggregate flow again.
-- KEYS[1] dead-letter stream, KEYS[2] held hash; ARGV[1] order-list key prefix, then ids.
local n = 0
for i = 2, #ARGV do
  local dl = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
  if #dl == 1 then
    local f = dl[1][2]
    local meta = {}
    for j = 1, #f, 2 do meta[f[j]] = f[j + 1] end
    if meta['aggregate'] and meta['aggregate'] ~= '' then
      redis.call('LREM', ARGV[1] .. meta['aggregate'], 1, meta['entry_id'])
    end
    redis.call('HDEL', KEYS[2], meta['entry_id'])
    redis.call('XDEL', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
