//! Maps keyed by numbers the server hands out itself: connection and job ids, function
//! ids, store keys.
//!
//! Peers never choose these keys, so no one can aim collisions at them and a fast seeded
//! hash (foldhash) serves; looking up a connection or a job is on every packet's path, and
//! std's SipHash was the largest single cost of a pipelined job there. Maps keyed by bytes a
//! peer sends (function names, uniques) keep std's SipHash, which resists collision floods.

/// A `HashMap` keyed by a server-assigned number.
pub(crate) type IdMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
