#![no_main]
// Any bytes through hickory's decoder and the query path with opcode UPDATE
// (see ggon_fuzz::update: the UPDATE handler does not exist yet).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::update(data));
