#![no_main]
// A primary's answers to a secondary's SOA query and transfer request (see ggon_fuzz::transfer).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::transfer::transfer(data));
