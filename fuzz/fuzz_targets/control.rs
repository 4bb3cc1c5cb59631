#![no_main]
// A control API body or query string as its handler decodes it (see ggon_fuzz::control).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::control::control(data));
