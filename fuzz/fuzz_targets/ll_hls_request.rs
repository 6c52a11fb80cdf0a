#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| origin::fuzzing::ll_hls_request(data));
