-- Requeue dead letters of one group onto the topic partition, keeping each event's fields (and
-- so its event_id). The new entry carries rq (the entry it replaces) and rg (the group it is
-- for: other groups ack it unseen) and takes the old entry's place in its aggregate's order:
-- the tail when the old one was, and the entry that waited behind the old one now waits
-- behind it (held until delivered).
-- KEYS[1] topic partition, KEYS[2] dead-letter stream, KEYS[3] held hash, KEYS[4] tails hash,
-- KEYS[5] waits hash. ARGV[1] group, then dead-letter entry ids.
-- Returns {dead-letter id, new entry id} per entry actually requeued.
local out = {}
local behind = nil -- predecessor id -> ids waiting behind it, built on first need
for i = 2, #ARGV do
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
    local old = meta['entry_id']
    args[#args + 1] = 'rq'
    args[#args + 1] = old
    args[#args + 1] = 'rg'
    args[#args + 1] = ARGV[1]
    local new_id = redis.call('XADD', KEYS[1], '*', unpack(args))
    if redis.call('HEXISTS', KEYS[3], old) == 1 then
      local agg = meta['aggregate']
      if agg and agg ~= '' and redis.call('HGET', KEYS[4], agg) == old then
        redis.call('HSET', KEYS[4], agg, new_id)
      end
      if not behind then
        behind = {}
        local all = redis.call('HGETALL', KEYS[5])
        for j = 1, #all, 2 do
          local list = behind[all[j + 1]] or {}
          list[#list + 1] = all[j]
          behind[all[j + 1]] = list
        end
      end
      for _, waiting in ipairs(behind[old] or {}) do
        redis.call('HSET', KEYS[5], waiting, new_id)
      end
      behind[new_id], behind[old] = behind[old], nil
      redis.call('HSET', KEYS[3], new_id, 'requeued')
      redis.call('HDEL', KEYS[3], old)
    end
    redis.call('XDEL', KEYS[2], ARGV[i])
    out[#out + 1] = {ARGV[i], new_id}
  end
end
return out
