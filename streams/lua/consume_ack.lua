-- Ack a batch in one step and release each entry's place in its aggregate's order: the tail
-- goes when it is still this entry (a later one keeps it otherwise), and an entry that waited
-- behind another forgets that.
-- KEYS[1] topic partition, KEYS[2] tails hash, KEYS[3] waits hash
-- ARGV[1] group, ARGV[2] n, ARGV[3] w, then the n entry ids, then their n aggregates
-- ('' = none), then the ids of the w entries that waited. One argument each: Redis hands them
-- to Lua ready-made, and they go to XACK, HMGET and HDEL by unpack (no Lua loop); splitting a
-- joined list in Lua (gmatch) cost five times as much per entry.
-- The tails are read before anything is written: a script stopped by an error keeps what it
-- wrote, and an error there then leaves every entry pending (to run again), not half acked.
local n, w = tonumber(ARGV[2]), tonumber(ARGV[3])
if n == 0 then return 0 end
local first_id, first_agg, first_waited = 4, 4 + n, 4 + 2 * n
-- unpack has a limit on how many values it returns: long lists go in slices.
local tails = {}
for i = first_agg, first_agg + n - 1, 4000 do
  local r = redis.call('HMGET', KEYS[2], unpack(ARGV, i, math.min(i + 3999, first_agg + n - 1)))
  for _, v in ipairs(r) do tails[#tails + 1] = v end
end
local acked = 0
for i = first_id, first_id + n - 1, 4000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 3999, first_id + n - 1)))
end
-- The '' field holds a long text (see consume_read.lua), never an id: no aggregate, no match.
local gone = {}
for i = 1, n do
  if tails[i] == ARGV[first_id + i - 1] then gone[#gone + 1] = ARGV[first_agg + i - 1] end
end
for i = 1, #gone, 4000 do
  redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 3999, #gone)))
end
for i = first_waited, first_waited + w - 1, 4000 do
  redis.call('HDEL', KEYS[3], unpack(ARGV, i, math.min(i + 3999, first_waited + w - 1)))
end
return acked
