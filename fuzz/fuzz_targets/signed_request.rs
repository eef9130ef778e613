#![no_main]
//! See `wrapsync_server::fuzz::signed_request`.

libfuzzer_sys::fuzz_target!(
    init: wrapsync_server::fuzz::quiet_caught_panics(),
    |data: &[u8]| {
        wrapsync_server::fuzz::signed_request(data);
    }
);
