#![no_main]
// etcd keys and values into the cluster model (see ggon_fuzz::etcd).
libfuzzer_sys::fuzz_target!(|data: &[u8]| ggon_fuzz::etcd::etcd(data));
