//! Cranelift (what the host compiles with) against Winch, wasmtime's baseline compiler, on the
//! bundled recipes (`scripts/bench-compilers`): compile time, the compiled code's size, and
//! loading it back (what a sandbox process does with shipped code). The engines are configured
//! as the sandbox's, but for the compiler. Prints a Markdown table for BENCHMARKS.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::pct;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, Strategy};

const ROUNDS: usize = 5;

fn engine(strategy: Strategy) -> Engine {
    let mut c = Config::new();
    c.strategy(strategy)
        .epoch_interruption(true)
        .wasm_component_model(true)
        .max_wasm_stack(1 << 20)
        .wasm_backtrace_max_frames(None);
    Engine::new(&c).expect("an engine")
}

/// Compile `bytes` `ROUNDS` times: (p50 compile, serialized size, p50 deserialize).
fn measure(engine: &Engine, bytes: &[u8]) -> Result<(Duration, usize, Duration), String> {
    let mut compiles = vec![];
    let mut loads = vec![];
    let mut size = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let code = engine.precompile_component(bytes).map_err(|e| format!("{e:#}"))?;
        compiles.push(t.elapsed());
        size = code.len();
        let t = Instant::now();
        // SAFETY: bytes this very engine produced a moment ago.
        unsafe { Component::deserialize(engine, &code) }.map_err(|e| format!("{e:#}"))?;
        loads.push(t.elapsed());
    }
    compiles.sort();
    loads.sort();
    Ok((pct(&compiles, 0.5), size, pct(&loads, 0.5)))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let cranelift = engine(Strategy::Cranelift);
    let winch = engine(Strategy::Winch);
    println!("| recipe | .wasm | Cranelift: compile p50 | code | load | Winch: compile p50 | code | load |");
    println!("|---|---|---|---|---|---|---|---|");
    for name in common::BUNDLED {
        let (_, bytes) = common::bundled(name);
        let c = measure(&cranelift, &bytes).expect("Cranelift compiles every bundled recipe");
        let kib = |n: usize| format!("{} KiB", n.div_ceil(1024));
        let w = match measure(&winch, &bytes) {
            Ok((t, size, load)) => format!("{} | {} | {}", ms(t), kib(size), ms(load)),
            Err(e) => format!("refused: {} | | ", e.lines().next().unwrap_or_default()),
        };
        println!(
            "| {name} | {} | {} | {} | {} | {w} |",
            kib(bytes.len()),
            ms(c.0),
            kib(c.1),
            ms(c.2)
        );
    }
}
