//! Alertmanager label matchers: parse, then match against labels taken from the same input.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (matchers, labels) = text.split_once('\n').unwrap_or((text, ""));
    let lines: Vec<&str> = matchers.split('\t').collect();
    if let Ok(m) = euphrosyne::matcher::Matchers::parse(&lines) {
        let labels: BTreeMap<String, String> = labels
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let _ = m.matches(&labels);
    }
});
