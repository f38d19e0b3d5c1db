//! One memory budget per run: every linear memory and table of the component together, plus the
//! host memory the run owns ([`super::meter`]), against `limits.memory_mib`.
//!
//! Linear memory and tables are checked as they grow (growth past the budget traps, so a recipe
//! cannot limp on after a failed `memory.grow`); host memory is checked at every epoch tick
//! (10 ms) and whenever a memory or table grows. The limiter remembers which limit was hit and
//! the peak of the whole budget.

use wasmtime::ResourceLimiter;

use super::meter::Meter;

/// Bytes one table element costs (a function reference and its type, conservatively).
const TABLE_ELEMENT_BYTES: usize = 16;

/// The budget of one store.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    table_elements_max: usize,
    linear: usize,
    tables: usize,
    /// The run's host-side allocations (`None`: not metered, every meter slot was taken).
    pub meter: Option<Meter>,
    /// The most the budget held at once, bytes.
    pub peak: usize,
    /// Which limit was hit, if any.
    pub hit: Option<String>,
}

impl Limiter {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Self {
        Limiter {
            max,
            table_elements_max: 100_000,
            linear: 0,
            tables: 0,
            meter: Meter::new(),
            peak: 0,
            hit: None,
        }
    }

    fn host(&self) -> usize {
        self.meter.as_ref().map_or(0, Meter::live)
    }

    /// Check the whole budget now; `Err` (and `hit` set) when over.
    pub fn check(&mut self) -> Result<(), String> {
        let host = self.host();
        let total = self.linear + self.tables + host;
        self.peak = self.peak.max(total);
        if total > self.max {
            let msg = format!(
                "memory limit: the run holds {} MiB (linear memory {} MiB, tables {} KiB, host-side resources {} MiB); limits.memory_mib allows {} MiB",
                total >> 20,
                self.linear >> 20,
                self.tables >> 10,
                host >> 20,
                self.max >> 20
            );
            self.hit.get_or_insert(msg.clone());
            return Err(msg);
        }
        Ok(())
    }

    /// The peak including the host-side peak seen by the meter.
    pub fn true_peak(&mut self) -> usize {
        let _ = self.check();
        self.peak
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.linear = self.linear + desired - current.min(desired);
        match self.check() {
            Ok(()) => Ok(true),
            Err(msg) => {
                self.linear -= desired - current.min(desired);
                Err(wasmtime::format_err!(msg))
            }
        }
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.table_elements_max {
            let msg = format!(
                "table limit: {desired} elements requested, {} allowed",
                self.table_elements_max
            );
            self.hit.get_or_insert(msg.clone());
            return Err(wasmtime::format_err!(msg));
        }
        let grow = (desired - current.min(desired)) * TABLE_ELEMENT_BYTES;
        self.tables += grow;
        match self.check() {
            Ok(()) => Ok(true),
            Err(msg) => {
                self.tables -= grow;
                Err(wasmtime::format_err!(msg))
            }
        }
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
