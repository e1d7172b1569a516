//! Runtime-neutral async Gearman client and worker, written once over futures-io
