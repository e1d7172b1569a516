//! Entry points for the fuzz targets. Private: enabled by the `__fuzz` feature, not a stable API.
