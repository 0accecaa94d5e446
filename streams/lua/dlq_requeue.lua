-- Requeue dead letters of one group onto the topic partition, keeping each event's fields (and
-- so its event_id). The new entry carries rq (the entry it replaces) and rg (the group it is
-- for: other groups ack it unseen) and takes the old entry's place in its aggregate's list.
-- KEYS[1] topic partition, KEYS[2] dead-letter stream, KEYS[3] held hash
-- ARGV[1] group, ARGV[2] order-list key prefix, then dead-letter entry ids.
-- Returns {dead-letter id, new entry id} per entry actually requeued.
local out = {}
for i = 3, #ARGV do
  local dl = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])
  if #dl == 1 then
    local f = dl[1][2]
    local meta = {}
    for j = 1, #f, 2 do meta[f[j]] = f[j + 1] end
    local orig = cjson.decode(meta['fields'])
    local args = {}
    for name, value in pairs(orig) do
      if name ~= 'rq' and name ~= 'rg' then
        args[#args + 1] = name
        args[#args + 1] = value
      end
    end
    args[#args + 1] = 'rq'
    args[#args + 1] = meta['entry_id']
    args[#args + 1] = 'rg'
    args[#args + 1] = ARGV[1]
    local new_id = redis.call('XADD', KEYS[1], '*', unpack(args))
    local agg = meta['aggregate']
    if agg and agg ~= '' then
      local k = ARGV[2] .. agg
      local idx = redis.call('LPOS', k, meta['entry_id'])
      if idx then
        redis.call('LSET', k, idx, new_id)
        redis.call('HSET', KEYS[3], new_id, 'requeued')
      end
    end
    redis.call('HDEL', KEYS[3], meta['entry_id'])
    redis.call('XDEL', KEYS[2], ARGV[i])
    out[#out + 1] = {ARGV[i], new_id}
  end
end
return out
