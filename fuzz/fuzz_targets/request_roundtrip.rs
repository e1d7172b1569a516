#![no_main]
use gearman_core::proto::Request;
libfuzzer_sys::fuzz_target!(|input: (Request, u32)| {
    gearman_core::fuzzing::request_roundtrip(input.0, input.1)
});
