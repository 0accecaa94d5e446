-- Finish a read: record each delivered entry's place in its aggregate's line, ack entries
-- requeued for another group, advance the recorded mark and release the read lock.
-- KEYS[1] topic partition, KEYS[2] read lock, KEYS[3] recorded mark, KEYS[4] held hash
-- ARGV[1] group, ARGV[2] token, ARGV[3] order-list key prefix, ARGV[4] last id read
-- ('' when nothing was read), ARGV[5] the entry ids joined by ',', ARGV[6] the byte length of
-- each entry's aggregate (0 = none) joined by ',', ARGV[7] the aggregates concatenated, then
-- pairs (1-based entry index, requeue group) for the entries that carry one. Whole-batch
-- arguments instead of one per entry: packing and parsing thousands of small arguments cost
-- more than the work itself; lengths rather than a separator, as an aggregate may hold any byte.
-- Returns pairs (1-based entry index, id it waits behind or '-' for an entry requeued for
-- another group) for the entries not at the head of their line; every other entry is a head.
local function before(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local requeued = {}
for i = 8, #ARGV, 2 do requeued[tonumber(ARGV[i])] = ARGV[i + 1] end
-- Normally this reader holds the lock and appends at the tails. If the lock expired meanwhile,
-- another reader may have recorded these entries (or later ones): place each one by id.
local owned = redis.call('GET', KEYS[2]) == ARGV[2]
local out, foreign = {}, {}
local aggs, pos, n = ARGV[7], 1, 0
local lengths = string.gmatch(ARGV[6], '%d+')
local prefix = ARGV[3]
for id in string.gmatch(ARGV[5], '[^,]+') do
  n = n + 1
  local len = tonumber(lengths() or '0')
  local agg = ''
  if len > 0 then
    agg = string.sub(aggs, pos, pos + len - 1)
    pos = pos + len
  end
  local rg = requeued[n] or ''
  local prev = ''
  if rg ~= '' and rg ~= ARGV[1] then
    foreign[#foreign + 1] = id
    prev = '-'
  elseif agg ~= '' then
    local k = prefix .. agg
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
        local at = #items
        for j = 1, #items do
          if before(id, items[j]) then at = j - 1 break end
        end
        if at == #items then redis.call('RPUSH', k, id)
        else redis.call('LINSERT', k, 'BEFORE', items[at + 1], id) end
        idx = at
      end
      if idx > 0 then prev = redis.call('LINDEX', k, idx - 1) end
    end
  end
  if prev ~= '' then
    out[#out + 1] = n
    out[#out + 1] = prev
  end
end
if #foreign > 0 then redis.call('XACK', KEYS[1], ARGV[1], unpack(foreign)) end
if ARGV[4] ~= '' then
  local mark = redis.call('GET', KEYS[3]) or '0-0'
  if before(mark, ARGV[4]) then redis.call('SET', KEYS[3], ARGV[4]) end
end
if owned then redis.call('DEL', KEYS[2]) end
return out
