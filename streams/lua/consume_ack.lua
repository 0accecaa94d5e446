-- Ack a batch in one step and release each entry's place in its aggregate's order: the tail
-- goes when it is still this entry (a later one keeps it otherwise), and an entry that waited
-- behind another forgets that.
-- KEYS[1] topic partition, KEYS[2] tails hash, KEYS[3] waits hash
-- ARGV[1] group, ARGV[2] the entry ids joined by ',', ARGV[3] ids of the entries that waited,
-- joined by ',', then each entry's aggregate ('' = none). Ids go joined (cheap to send, cheap
-- to split); aggregates one per argument, as they may hold any byte and go straight to HMGET.
local function sliced(cmd, key, items, from, to, out)
  for i = from, to, 4000 do
    local r = redis.call(cmd, key, unpack(items, i, math.min(i + 3999, to)))
    if out then
      for _, v in ipairs(r) do out[#out + 1] = v end
    end
  end
  return out
end
local ids = {}
for id in string.gmatch(ARGV[2], '[^,]+') do ids[#ids + 1] = id end
local n = #ids
if n == 0 then return 0 end
local acked = 0
for i = 1, n, 4000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, i, math.min(i + 3999, n)))
end
-- The '' field holds a long text (see consume_read.lua), never an id: no aggregate, no match.
local tails = sliced('HMGET', KEYS[2], ARGV, 4, 3 + n, {})
local gone = {}
for i = 1, n do
  if tails[i] == ids[i] then gone[#gone + 1] = ARGV[3 + i] end
end
if #gone > 0 then sliced('HDEL', KEYS[2], gone, 1, #gone) end
local waited = {}
for id in string.gmatch(ARGV[3], '[^,]+') do waited[#waited + 1] = id end
if #waited > 0 then sliced('HDEL', KEYS[3], waited, 1, #waited) end
return acked
