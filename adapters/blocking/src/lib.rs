//! Blocking Gearman client and worker on std::net
