#![no_main]
//! See `wrapsync_server::fuzz::plan_ops`.

libfuzzer_sys::fuzz_target!(
    init: wrapsync_server::fuzz::quiet_caught_panics(),
    |data: &[u8]| {
        wrapsync_server::fuzz::plan_ops(data);
    }
);
