-- What each waiting entry still waits for. An entry's predecessor that is neither pending nor
-- held is finished (it was acked only after its own predecessor was) or was deleted from the
-- stream: then what it waited behind, if anything, counts instead, so a deleted entry cannot
-- block its aggregate. A free entry forgets what it waited behind.
-- KEYS[1] topic partition, KEYS[2] held hash, KEYS[3] waits hash; ARGV[1] group, then entry
-- ids. Returns one string per id: '' free to run, 'p:<id>' behind a pending entry,
-- 'h:<id>' behind a held (dead-lettered, or requeued and not delivered yet) entry.
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local first = redis.call('HGET', KEYS[3], id)
  local cur, verdict = first, ''
  while cur do
    if redis.call('HEXISTS', KEYS[2], cur) == 1 then verdict = 'h:' .. cur break end
    if #redis.call('XPENDING', KEYS[1], ARGV[1], cur, cur, 1) > 0 then
      verdict = 'p:' .. cur
      break
    end
    cur = redis.call('HGET', KEYS[3], cur)
  end
  if verdict == '' then
    if first then redis.call('HDEL', KEYS[3], id) end
  elseif cur ~= first then
    redis.call('HSET', KEYS[3], id, cur)
  end
  out[#out + 1] = verdict
end
return out
