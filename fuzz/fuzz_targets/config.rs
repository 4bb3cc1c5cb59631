#![no_main]
// A config file as ggond reads and validates it (see ggon_fuzz::config).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::config::config(data));
