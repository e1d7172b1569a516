#![no_main]
use gearman_core::proto::Response;
libfuzzer_sys::fuzz_target!(|input: (Response, u32)| {
    gearman_core::fuzzing::response_roundtrip(input.0, input.1)
});
