//! The gearmand-rs job server
