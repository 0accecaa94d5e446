-- Remove consumers that are gone and own nothing: no pending entries, idle and without a
-- heartbeat past the group's claim timeout. Checked and deleted in one step, so a consumer
-- that reads meanwhile cannot lose its entries with it.
-- KEYS[1] topic partition, KEYS[2] heartbeat hash
-- ARGV[1] group, ARGV[2] this consumer, ARGV[3] now ms, ARGV[4] silent ms
local now, silent = tonumber(ARGV[3]), tonumber(ARGV[4])
local removed = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local info = {}
  for j = 1, #c, 2 do info[c[j]] = c[j + 1] end
  local name = info['name']
  if name ~= ARGV[2] and info['pending'] == 0 and info['idle'] > silent then
    local hb = redis.call('HGET', KEYS[2], name)
    if (not hb) or (now - tonumber(hb) > silent) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
      redis.call('HDEL', KEYS[2], name)
      removed[#removed + 1] = name
    end
  end
end
return removed
