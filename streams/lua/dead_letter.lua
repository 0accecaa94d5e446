-- Move one pending entry to the group's dead-letter stream and ack it, as one step: a crash
-- before it leaves the entry pending, a crash after it leaves it dead-lettered exactly once.
-- The entry keeps its place in its aggregate's order (held; it may stay the tail), so later
-- entries of that aggregate wait until an operator requeues or purges it. It ran, so its own
-- predecessor was finished: it no longer waits behind anything.
-- KEYS[1] topic partition, KEYS[2] dead-letter stream, KEYS[3] held hash, KEYS[4] waits hash
-- ARGV[1] group, ARGV[2] entry id, then field/value pairs of the dead-letter entry.
-- Returns the dead-letter entry id, or false when the entry was no longer pending.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 then return false end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
local dl = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], 'dlq:' .. dl)
redis.call('HDEL', KEYS[4], ARGV[2])
return dl
