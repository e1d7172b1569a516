//! Cross-crate and interop tests
