#![no_main]
// TSIG verification of received and of signed-then-edited messages (see ggon_fuzz::tsig).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::tsig::tsig(data));
