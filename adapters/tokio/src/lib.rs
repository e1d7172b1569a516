//! Gearman client and worker on tokio
