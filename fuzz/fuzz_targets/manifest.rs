//! `recipe.toml`: parse, and a parsed manifest survives its own round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = euphrosyne::manifest::Manifest::from_toml(text, "fuzz") {
        let back = euphrosyne::manifest::Manifest::from_toml(&m.to_toml(), "round trip")
            .expect("a valid manifest's own TOML parses");
        assert_eq!(back, m);
    }
});
