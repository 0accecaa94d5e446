-- cdb event store: one append, as one atomic step (DESIGN.md section 5).
--
-- KEYS[1]  aggregate stream       entry id 0-N is sequence number N
-- KEYS[2]  event id hash          event_id -> sequence number
-- KEYS[3]  topic partition        where consumers read the same events
-- ARGV[1]  expected version       "" = any (no check)
-- ARGV[2]  stream id
-- ARGV[3..] four values per event: event_id, event_type, schema_version, body (JSON)
--
-- Reply (first element is the outcome; nothing is written unless it is 1):
--   {1, first_seq, topic_entry_id, ...}  appended
--   {2, first_seq, last_seq}             every event id is already stored: idempotent retry
--   {3, actual_version}                  expected version does not match
--   {4, known_event_id, ...}             some, not all, event ids are already stored
--
-- All three keys carry the same hash tag, so this also runs unchanged on Redis Cluster.

local agg, ids, topic = KEYS[1], KEYS[2], KEYS[3]
local expected, sid = ARGV[1], ARGV[2]
local count = (#ARGV - 2) / 4
local call = redis.call
-- unpack() pushes every value on the Lua stack, whose size is limited: work in chunks.
local CHUNK = 1000

local version = call('XLEN', agg)

-- The id hash is written together with the stream, so an empty stream has no known ids.
if version > 0 then
    if count == 1 then  -- the common case, without building tables
        local seq = call('HGET', ids, ARGV[3])
        if seq then
            seq = tonumber(seq)
            return {2, seq, seq}
        end
    else
        local known, first, last = {}, nil, nil
        for start = 1, count, CHUNK do
            local chunk = {}
            for i = start, math.min(start + CHUNK - 1, count) do
                chunk[#chunk + 1] = ARGV[4 * i - 1]
            end
            local seqs = call('HMGET', ids, unpack(chunk))
            for j = 1, #seqs do
                if seqs[j] then
                    local seq = tonumber(seqs[j])
                    known[#known + 1] = chunk[j]
                    if first == nil or seq < first then first = seq end
                    if last == nil or seq > last then last = seq end
                end
            end
        end
        if #known == count then
            return {2, first, last}
        end
        if #known > 0 then
            table.insert(known, 1, 4)
            return known
        end
    end
end

if expected ~= '' and tonumber(expected) ~= version then
    return {3, version}
end

local reply = {1, version + 1}
for i = 1, count do
    -- tostring once: a Lua number is formatted again on every use
    local seq = tostring(version + i)
    local b = 4 * i - 1
    local id, etype, sv, body = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3]
    call('XADD', agg, '0-' .. seq, 'id', id, 'n', seq, 's', sid, 't', etype, 'v', sv, 'd', body)
    reply[i + 2] = call('XADD', topic, '*', 'id', id, 'n', seq, 's', sid, 't', etype, 'v', sv, 'd', body)
    call('HSET', ids, id, seq)
end
return reply
