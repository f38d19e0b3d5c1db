//! The free-form `[config]` table of the recipe's manifest, as strings.

/// The value of `key`, if the manifest sets it.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::config::get(key);
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::mock(|m| m.config.get(key).cloned())
}

/// The value of `key`, or `default`.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_string())
}

/// The value of `key` parsed as `T`, or `default` when unset or unparsable.
pub fn parse_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Every key and value.
pub fn all() -> Vec<(String, String)> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::config::all();
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::mock(|m| m.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}
