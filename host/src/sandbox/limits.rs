//! The per-run resource limiter: linear memory, tables, instances and memories capped; growth
//! past a cap traps (so a recipe cannot limp on after a failed `memory.grow`), and the limiter
//! remembers which cap was hit and the peak memory.

use wasmtime::ResourceLimiter;

/// Caps for one store.
#[derive(Debug)]
pub struct Limiter {
    memory_max: usize,
    table_elements_max: usize,
    /// Largest linear memory size seen, in bytes.
    pub peak_memory: usize,
    /// Which cap was hit, if any.
    pub hit: Option<String>,
}

impl Limiter {
    /// A limiter with `memory_max` bytes of linear memory.
    pub fn new(memory_max: usize) -> Self {
        Limiter {
            memory_max,
            table_elements_max: 100_000,
            peak_memory: 0,
            hit: None,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_max {
            let msg = format!(
                "memory limit: the recipe asked for {} MiB of linear memory (had {} MiB); limits.memory_mib allows {} MiB",
                desired >> 20,
                current >> 20,
                self.memory_max >> 20
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::format_err!(msg));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements_max {
            let msg = format!(
                "table limit: {desired} elements requested, {} allowed",
                self.table_elements_max
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::format_err!(msg));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        32
    }
    fn tables(&self) -> usize {
        32
    }
    fn memories(&self) -> usize {
        4
    }
}
