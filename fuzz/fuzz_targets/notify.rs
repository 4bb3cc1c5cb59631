#![no_main]
// A NOTIFY for a secondary zone (see ggon_fuzz::transfer::notify).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::transfer::notify(data));
