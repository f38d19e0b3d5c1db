//! A packed recipe (ConfigMap YAML): manifest + component bytes, maybe compressed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = euphrosyne::pack::unpack(text, "fuzz");
});
