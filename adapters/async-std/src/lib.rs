//! Gearman client and worker on futures-io and async-io: serves async-std and smol
