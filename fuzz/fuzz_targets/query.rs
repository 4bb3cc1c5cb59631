#![no_main]
// Any bytes as a query packet, answered over UDP and TCP (see ggon_fuzz::query).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::query(data));
