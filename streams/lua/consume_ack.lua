-- Ack a batch in one step and release each entry's place in its aggregate's order: the tail
-- goes when it is still this entry (a later one keeps it otherwise), and an entry that waited
-- behind another forgets that.
-- KEYS[1] topic partition, KEYS[2] tails hash, KEYS[3] waits hash
-- ARGV[1] group, ARGV[2] the entry ids joined by ',', ARGV[3] ids of the entries that waited,
-- joined by ',', then each entry's aggregate ('' = none). Ids go joined (cheap to send, cheap
-- to split); aggregates one per argument, as they may hold any byte and go straight to HMGET.
-- The tails are read before anything is written: a script stopped by an error keeps what it
-- wrote, and an error there then leaves every entry pending (to run again), not half acked.
local n = #ARGV - 3
if n == 0 then return 0 end
local ids = {}
for id in string.gmatch(ARGV[2], '[^,]+') do ids[#ids + 1] = id end
-- unpack has a limit on how many values it returns: long lists go in slices.
local tails = {}
for i = 4, 3 + n, 4000 do
  local r = redis.call('HMGET', KEYS[2], unpack(ARGV, i, math.min(i + 3999, 3 + n)))
  for _, v in ipairs(r) do tails[#tails + 1] = v end
end
local acked = 0
for i = 1, n, 4000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ids, i, math.min(i + 3999, n)))
end
-- The '' field holds a long text (see consume_read.lua), never an id: no aggregate, no match.
local gone = {}
for i = 1, n do
  if tails[i] == ids[i] then gone[#gone + 1] = ARGV[3 + i] end
end
for i = 1, #gone, 4000 do
  redis.call('HDEL', KEYS[2], unpack(gone, i, math.min(i + 3999, #gone)))
end
if ARGV[3] ~= '' then
  local waited = {}
  for id in string.gmatch(ARGV[3], '[^,]+') do waited[#waited + 1] = id end
  for i = 1, #waited, 4000 do
    redis.call('HDEL', KEYS[3], unpack(waited, i, math.min(i + 3999, #waited)))
  end
end
return acked
