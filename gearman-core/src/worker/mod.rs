//! The worker connection machine.
