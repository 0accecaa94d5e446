-- Start a read: take the group's short read lock, so reads and the recording of each entry's
-- place in its aggregate's line happen one reader at a time, in delivery order. If a reader
-- died between its read and its recording (the group delivered past the recorded mark),
-- record those entries first, so no later entry can jump ahead of them.
-- KEYS[1] topic partition, KEYS[2] read lock, KEYS[3] recorded mark
-- ARGV[1] group, ARGV[2] token, ARGV[3] lock ms, ARGV[4] order-list key prefix
-- Returns {'busy'} or {'ok', the group's last-delivered id}.
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then return {'busy'} end
local last = '0-0'
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local info = {}
  for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
  if info['name'] == ARGV[1] then last = info['last-delivered-id'] end
end
local mark = redis.call('GET', KEYS[3]) or '0-0'
if mark ~= last then
  local start = '(' .. mark
  if mark == '0-0' then start = '-' end
  -- Only entries still pending can be unrecorded (an XGROUP SETID jump delivers nothing).
  for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], start, last, 10000)) do
    local e = redis.call('XRANGE', KEYS[1], p[1], p[1])
    if #e == 1 then
      local f = e[1][2]
      local agg, rg = nil, nil
      for j = 1, #f, 2 do
        if f[j] == 's' then agg = f[j + 1] elseif f[j] == 'rg' then rg = f[j + 1] end
      end
      if agg and not rg then
        local k = ARGV[4] .. agg
        if not redis.call('LPOS', k, p[1]) then redis.call('RPUSH', k, p[1]) end
      end
    end
  end
  redis.call('SET', KEYS[3], last)
end
return {'ok', last}
