//! A hostile debugger for the sandbox's adversarial suite. The `mode` config key picks the
//! attack; every mode must end with its exact status, within its limit, in the same host process.

use recipe_sdk::prelude::*;

/// The recipe.
pub struct Hostile;

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64, pad: &mut [u8; 256]) -> u64 {
    pad[(depth % 256) as usize] = depth as u8;
    let mut next = [0u8; 256];
    recurse(depth + 1, &mut next) + u64::from(pad[0])
}

/// Recursion with scalar locals only: it lives on the wasm call stack, not in linear memory.
#[inline(never)]
#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    std::hint::black_box(deep(std::hint::black_box(n + 1))) ^ n
}

impl Debugger for Hostile {
    fn debug(incident: Incident) -> Result<Analysis, RecipeError> {
        let mode = config::get_or("mode", "ok");
        match mode.as_str() {
            "loop" => {
                let mut x = 0u64;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "print" => {
                let line = "x".repeat(1023);
                loop {
                    println!("{line}");
                }
            }
            "stack" => Ok(Analysis::inconclusive(format!("{}", deep(0)))),
            "shadow-stack" => {
                let mut pad = [0u8; 256];
                let n = recurse(0, &mut pad);
                Ok(Analysis::inconclusive(format!("{n}")))
            }
            "panic" => panic!("hostile recipe panicked on purpose"),
            "file" => match std::fs::read_to_string("/etc/passwd") {
                Ok(text) => Ok(Analysis::identified(format!("LEAKED: {text}"))),
                Err(e) => Err(RecipeError::new(format!("cannot open /etc/passwd: {e}"))),
            },
            "env" => {
                let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                let args: Vec<String> = std::env::args().collect();
                Ok(Analysis::inconclusive(format!("env={env:?} args={args:?}")))
            }
            "http" => {
                let url = config::get_or("url", "http://127.0.0.1:9/");
                match http::get(&url) {
                    Ok(r) => Ok(Analysis::identified(format!("REACHED {url}: {}", r.status))),
                    Err(e) => Err(e.into()),
                }
            }
            "secret" => match secrets::get("db-password") {
                Ok(v) => Ok(Analysis::identified(format!("LEAKED secret {v}"))),
                Err(e) => Err(e.into()),
            },
            "kube-write" => match kube::delete("v1", "Namespace", None, "kube-system") {
                Ok(()) => Ok(Analysis::identified("DELETED kube-system")),
                Err(e) => Err(e.into()),
            },
            "sleep" => {
                let ms = config::parse_or("sleep_ms", 1000u64);
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(Analysis::identified(format!("slept {ms} ms")))
            }
            "big-result" => Ok(Analysis::inconclusive("y".repeat(1 << 20))),
            _ => Ok(
                Analysis::identified(format!("all good: {} alert(s)", incident.alerts.len()))
                    .finding(Finding::info("mode", mode)),
            ),
        }
    }
}

recipe_sdk::export_debugger!(Hostile);
