-- What each waiting entry still waits for. Drops list members that are neither pending nor
-- held (an entry deleted from the stream), so a stale reference cannot block an aggregate.
-- KEYS[1] topic partition, KEYS[2] held hash; ARGV[1] group, ARGV[2] order-list key prefix,
-- then pairs (entry id, aggregate). Returns one string per pair: '' runnable,
-- 'p:<id>' behind a pending entry, 'h:<id>' behind a held (dead-lettered/requeued) entry.
local out = {}
for i = 3, #ARGV, 2 do
  local id, k = ARGV[i], ARGV[2] .. ARGV[i + 1]
  local verdict = ''
  while true do
    local idx = redis.call('LPOS', k, id)
    if not idx or idx == 0 then break end
    local prev = redis.call('LINDEX', k, idx - 1)
    if redis.call('HEXISTS', KEYS[2], prev) == 1 then verdict = 'h:' .. prev break end
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], prev, prev, 1)
    if #p > 0 then verdict = 'p:' .. prev break end
    redis.call('LREM', k, 1, prev)
  end
  out[#out + 1] = verdict
end
return out
