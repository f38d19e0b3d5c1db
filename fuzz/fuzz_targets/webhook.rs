//! The `/webhook` body parser: Alertmanager webhooks, single alerts, generic alerts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(p) = euphrosyne::alert::parse(body, "2026-01-01T00:00:00Z") {
        // Every parsed alert has a fingerprint and the common labels are a subset of each.
        for a in &p.alerts {
            for (k, v) in &p.common_labels {
                assert_eq!(a.labels.get(k), Some(v), "common label {k} not on every alert");
            }
        }
    }
});
