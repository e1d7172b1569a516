//! The `Machine` contract shared by client and worker connections.
