#![no_main]
// A zone file: origin on the first line, the file after it (see ggon_fuzz::zone).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::zone::zone(data));
