#![no_main]
libfuzzer_sys::fuzz_target!(|input: (Vec<u8>, Vec<u16>)| {
    gearman_core::fuzzing::chunked_decode(&input.0, &input.1)
});
