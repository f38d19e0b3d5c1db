//! A hostile debugger for the sandbox's adversarial suite. The `mode` config key picks the
//! attack; every mode must end with its exact status, within its limit, in the same host process.

use recipe_sdk::prelude::*;

#[cfg(target_arch = "wasm32")]
mod raw;

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
            #[cfg(target_arch = "wasm32")]
            "conns" => {
                let authority = config::get_or("authority", "127.0.0.1:9");
                let n = config::parse_or("conns", 300usize);
                let (accepted, refused, held) = raw::connections(&authority, n);
                std::hint::black_box(&held);
                Ok(Analysis::inconclusive(format!(
                    "accepted {accepted}, refused {refused}"
                )))
            }
            #[cfg(target_arch = "wasm32")]
            "headers" => Ok(Analysis::inconclusive(format!(
                "hoarded {} fields",
                raw::hoard_headers()
            ))),
            "kube" => {
                let api_version = config::get_or("api_version", "v1");
                let kind = config::get_or("kind", "ConfigMap");
                let namespace = config::get("namespace");
                let name = config::get_or("name", "x");
                let r = match config::get_or("op", "get").as_str() {
                    "create" => {
                        let object: serde_json::Value =
                            serde_json::from_str(&config::get_or("object", "{}")).unwrap_or_default();
                        kube::create(&api_version, &kind, namespace.as_deref(), &object)
                    }
                    _ => kube::get(&api_version, &kind, namespace.as_deref(), &name),
                };
                match r {
                    Ok(v) => Ok(Analysis::identified(format!(
                        "REACHED {kind} {}",
                        v["metadata"]["name"].as_str().unwrap_or("?")
                    ))),
                    Err(e) => Err(e.into()),
                }
            }
            "empty-logs" => {
                for _ in 0..2_000_000 {
                    log::info("");
                }
                Ok(Analysis::inconclusive("logged two million empty lines"))
            }
            "denials" => {
                let name = "s".repeat(4000);
                for _ in 0..100_000 {
                    let _ = secrets::get(&name);
                }
                Ok(Analysis::inconclusive("asked 100000 times"))
            }
            "exit" => std::process::exit(1),
            "log-inject" => {
                log::info("innocent\nFORGED level=ERROR host compromised\x1b[2J\x1b[31m");
                let _ = secrets::get("x\nFORGED denial\x1b[2J");
                Err(RecipeError::new("failed\nFORGED message\x1b[2J"))
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
