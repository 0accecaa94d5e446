-- Finish a read: record each delivered entry's place in its aggregate's line, ack entries
-- requeued for another group, advance the recorded mark and release the read lock.
-- KEYS[1] topic partition, KEYS[2] read lock, KEYS[3] recorded mark, KEYS[4] held hash
-- ARGV[1] group, ARGV[2] token, ARGV[3] order-list key prefix, ARGV[4] last id read
-- ('' when nothing was read), then triples (entry id, aggregate or '', requeue group or '').
-- Returns one string per entry: the id it waits behind, '' (head of its line) or '-' (foreign).
local function before(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
-- Normally this reader holds the lock and appends at the tails. If the lock expired meanwhile,
-- another reader may have recorded these entries (or later ones): place each one by id.
local owned = redis.call('GET', KEYS[2]) == ARGV[2]
local out, foreign = {}, {}
for i = 5, #ARGV, 3 do
  local id, agg, rg = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local prev = ''
  if rg ~= '' and rg ~= ARGV[1] then
    foreign[#foreign + 1] = id
    prev = '-'
  elseif agg ~= '' then
    local k = ARGV[3] .. agg
    if rg ~= '' then
      -- a requeued entry already holds the place of the one it replaces
      redis.call('HDEL', KEYS[4], id)
      local idx = redis.call('LPOS', k, id)
      if idx and idx > 0 then prev = redis.call('LINDEX', k, idx - 1) end
    elseif owned then
      if redis.call('RPUSH', k, id) > 1 then prev = redis.call('LINDEX', k, -2) end
    else
      local idx = redis.call('LPOS', k, id)
      if not idx then
        local items = redis.call('LRANGE', k, 0, -1)
        local pos = #items
        for j = 1, #items do
          if before(id, items[j]) then pos = j - 1 break end
        end
        if pos == #items then redis.call('RPUSH', k, id)
        else redis.call('LINSERT', k, 'BEFORE', items[pos + 1], id) end
        idx = pos
      end
      if idx > 0 then prev = redis.call('LINDEX', k, idx - 1) end
    end
  end
  out[#out + 1] = prev
end
if #foreign > 0 then redis.call('XACK', KEYS[1], ARGV[1], unpack(foreign)) end
if ARGV[4] ~= '' then
  local mark = redis.call('GET', KEYS[3]) or '0-0'
  if before(mark, ARGV[4]) then redis.call('SET', KEYS[3], ARGV[4]) end
end
if owned then redis.call('DEL', KEYS[2]) end
return out
