-- Ack a batch in one step and release each entry's place in its aggregate's order: the tail
-- goes when it is still this entry (a later one keeps it otherwise), and an entry that waited
-- behind another forgets that.
-- KEYS[1] topic partition, KEYS[2] tails hash, KEYS[3] waits hash
-- ARGV[1] group, ARGV[2] the entry ids joined by ',', ARGV[3] the byte length of each entry's
-- aggregate (0 = none) joined by ',', ARGV[4] the aggregates concatenated (whole-batch
-- arguments: see consume_read.lua), ARGV[5] ids of the entries that waited, joined by ','.
local function sliced(cmd, key, items, out)
  for i = 1, #items, 4000 do
    local r = redis.call(cmd, key, unpack(items, i, math.min(i + 3999, #items)))
    if out then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end
local ids, tail_ids, tail_aggs = {}, {}, {}
local blob, pos = ARGV[4], 1
local lengths = string.gmatch(ARGV[3], '%d+')
for id in string.gmatch(ARGV[2], '[^,]+') do
  ids[#ids + 1] = id
  local len = tonumber(lengths() or '0')
  if len > 0 then
    tail_ids[#tail_ids + 1] = id
    tail_aggs[#tail_aggs + 1] = string.sub(blob, pos, pos + len - 1)
    pos = pos + len
  end
end
if #ids == 0 then return 0 end
local acked = 0
for i = 1, #ids, 4000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, i, math.min(i + 3999, #ids)))
end
if #tail_aggs > 0 then
  local tails = sliced('HMGET', KEYS[2], tail_aggs, {})
  local gone = {}
  for i, agg in ipairs(tail_aggs) do
    if tails[i] == tail_ids[i] then gone[#gone + 1] = agg end
  end
  if #gone > 0 then sliced('HDEL', KEYS[2], gone) end
end
local waited = {}
for id in string.gmatch(ARGV[5], '[^,]+') do waited[#waited + 1] = id end
if #waited > 0 then sliced('HDEL', KEYS[3], waited) end
return acked
