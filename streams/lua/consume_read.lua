-- Read and record in one step: each delivered entry takes its place behind the newest
-- unfinished entry of its aggregate (the tail), so no later entry can run before it.
-- Either the script reads itself (small batches: one round trip, no lock) or it records what
-- the caller just read with a plain XREADGROUP (big batches: their fields need not pass
-- through Lua, which costs more than the recording). Two readers may record out of order;
-- the mark (the newest id recorded) lets the later range first record every still-pending
-- entry delivered before it (XPENDING + XRANGE), and the earlier range then finds its entries
-- recorded and only looks up what they wait behind.
-- KEYS[1] topic partition, KEYS[2] tails hash, KEYS[3] waits hash, KEYS[4] held hash,
-- KEYS[5] mark. ARGV[1] group, ARGV[2] consumer, ARGV[3] count: > 0 reads up to that many new
-- entries here; 0 records the caller's n entries: ARGV[4] n, ARGV[5] m, then m pairs
-- (1-based index, requeue group) for entries carrying one, then the n entry ids, then each
-- entry's aggregate ('' = none). One argument each: Redis hands them to Lua ready-made, while
-- splitting a joined list in Lua (gmatch) cost five times as much per entry.
-- Returns {top, entries, waits}: the entries read here ({id, fields} each); top = the stream's
-- newest id when the script read nothing, the last id read when it read fewer entries than it
-- asked for (either way: what a blocking wait waits past), else ''; waits =
-- pairs (1-based index, id it waits behind) for the entries not free to run.
local group = ARGV[1]
local function before(a, b)
  local am, as = string.match(a, '(%d+)-(%d+)')
  local bm, bs = string.match(b, '(%d+)-(%d+)')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local function route(f)
  local agg, rg = '', ''
  for j = 1, #f, 2 do
    if f[j] == 's' then agg = f[j + 1] elseif f[j] == 'rg' then rg = f[j + 1] end
  end
  return agg, rg
end
-- unpack has a limit on how many values it returns: long argument lists go in slices.
local function sliced(cmd, key, items, out)
  for i = 1, #items, 4000 do
    local r = redis.call(cmd, key, unpack(items, i, math.min(i + 3999, #items)))
    if out then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
  end
  return out
end

local ids, aggs, rgs, entries, top = {}, {}, {}, {}, ''
local count = tonumber(ARGV[3])
if count > 0 then
  local r = redis.call('XREADGROUP', 'GROUP', group, ARGV[2], 'COUNT', count, 'STREAMS', KEYS[1], '>')
  if r then entries = r[1][2] end
  for i, e in ipairs(entries) do
    ids[i] = e[1]
    aggs[i], rgs[i] = route(e[2])
  end
  if #entries == 0 then
    local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
    top = (#last == 1 and last[1][1]) or '0-0'
  elseif #entries < count then
    top = entries[#entries][1]  -- a short read: the stream held nothing more
  end
else
  local n = tonumber(ARGV[4])
  local pairs_end = 5 + 2 * tonumber(ARGV[5])
  for i = 1, n do
    ids[i] = ARGV[pairs_end + i]
    aggs[i] = ARGV[pairs_end + n + i]
    rgs[i] = ''
  end
  for i = 6, pairs_end, 2 do rgs[tonumber(ARGV[i])] = ARGV[i + 1] end
end
local n = #ids
if n == 0 then return {top, entries, {}} end

local out = {}
local mark = redis.call('GET', KEYS[5])
-- Entries an earlier catch-up recorded already (ids up to the mark; ids come in order, so
-- a binary search finds where they end): only what they wait behind.
local k = 1
local known = {}
if mark and not before(mark, ids[1]) then
  local lo, hi = 1, n + 1  -- the first id after the mark is in lo..hi (n + 1: none)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if before(mark, ids[mid]) then hi = mid else lo = mid + 1 end
  end
  k = lo
  for i = 1, k - 1 do known[i] = ids[i] end
end
if #known > 0 then
  local prevs = sliced('HMGET', KEYS[3], known, {})
  for i = 1, #known do
    if prevs[i] then
      out[#out + 1] = i
      out[#out + 1] = prevs[i]
    end
  end
end
if k > n then return {top, entries, out} end

-- Hashes of many fields stay real hash tables: a big batch written into a small (listpack)
-- hash costs time quadratic in its size until Redis converts it; a value longer than the
-- listpack limit makes Redis convert at once, and the field keeps the hash from going away.
local KEEP = 'keeps this hash a hash table: see consume_read.lua (not an aggregate, not an entry)'
local newest, set_tails, set_waits, requeued = {}, {'', KEEP}, {'', KEEP}, {}
-- Record entries from..to of (ids, aggs, rgs) in order; base + i is an entry's index in the
-- reply (0 = not ours: recorded for its reader).
local function place(e_ids, e_aggs, e_rgs, from, to, ours)
  local fetch = {}
  for i = from, to do
    if e_aggs[i] ~= '' then fetch[#fetch + 1] = e_aggs[i] end
  end
  local tails = {}
  if #fetch > 0 then tails = sliced('HMGET', KEYS[2], fetch, {}) end
  local j = 0
  for i = from, to do
    local id, agg, rg = e_ids[i], e_aggs[i], e_rgs[i]
    local prev = false
    if agg ~= '' then j = j + 1 end
    if rg == group then
      -- A requeued entry already holds the place of the one it replaces.
      requeued[#requeued + 1] = id
      prev = redis.call('HGET', KEYS[3], id)
    elseif rg == '' and agg ~= '' then
      prev = newest[agg]
      if prev == nil then prev = tails[j] end
      newest[agg] = id
      set_tails[#set_tails + 1] = agg
      set_tails[#set_tails + 1] = id
      if prev then
        set_waits[#set_waits + 1] = id
        set_waits[#set_waits + 1] = prev
      end
    end
    if prev and ours then
      out[#out + 1] = i
      out[#out + 1] = prev
    end
  end
end

-- Pending entries delivered before ours but not recorded (their reader has not got here yet,
-- or died) go first.
local start = '-'
if mark then start = '(' .. mark end
local gap = redis.call('XPENDING', KEYS[1], group, start, '(' .. ids[k], 10000)
if #gap > 0 then
  local g_ids, g_aggs, g_rgs = {}, {}, {}
  for _, p in ipairs(gap) do
    local e = redis.call('XRANGE', KEYS[1], p[1], p[1])
    if #e == 1 then
      g_ids[#g_ids + 1] = p[1]
      g_aggs[#g_ids], g_rgs[#g_ids] = route(e[1][2])
    end
  end
  place(g_ids, g_aggs, g_rgs, 1, #g_ids, false)
end
place(ids, aggs, rgs, k, n, true)
if #set_tails > 2 then sliced('HSET', KEYS[2], set_tails) end
if #set_waits > 2 then sliced('HSET', KEYS[3], set_waits) end
if #requeued > 0 then sliced('HDEL', KEYS[4], requeued) end
if not mark or before(mark, ids[n]) then redis.call('SET', KEYS[5], ids[n]) end
return {top, entries, out}
