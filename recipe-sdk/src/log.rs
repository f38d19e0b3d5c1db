//! Structured logging to the host. Lines land in the run's result (bounded, like stdout).

pub use crate::wire::Level;

/// Log `message` at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::log as wit;
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        wit::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::mock(|m| m.logs.push((level, message.to_string())));
}

/// Log at debug level.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}
/// Log at info level.
pub fn info(message: &str) {
    log(Level::Info, message)
}
/// Log at warn level.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}
/// Log at error level.
pub fn error(message: &str) {
    log(Level::Error, message)
}
