//! Typed reads of diffusers' `config.json` files with diffusers' defaults and clear errors.

use faceclip_core::LoadError;
use serde_json::Value;

/// A parsed `config.json`; every read names the file kind and key when the value is malformed.
pub struct ConfigJson {
    value: Value,
    what: &'static str,
}

impl ConfigJson {
    /// Parses `json`; `what` names the file in errors ("UNet config.json").
    pub fn parse(json: &str, what: &'static str) -> Result<Self, LoadError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| LoadError::Config(format!("{what}: {e}")))?;
        if !value.is_object() {
            return Err(LoadError::Config(format!("{what}: not a JSON object")));
        }
        Ok(Self { value, what })
    }

    /// A configuration error about this file.
    pub fn error(&self, why: impl std::fmt::Display) -> LoadError {
        LoadError::Config(format!("{}: {why}", self.what))
    }

    /// The value of `key`, treating JSON `null` as absent.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// A whole number, or `default` when absent.
    pub fn usize(&self, key: &str, default: usize) -> Result<usize, LoadError> {
        match self.get(key) {
            None => Ok(default),
            Some(x) => as_usize(x)
                .ok_or_else(|| self.error(format!("`{key}` must be a whole number, got {x}"))),
        }
    }

    /// A number, or `default` when absent.
    pub fn f64(&self, key: &str, default: f64) -> Result<f64, LoadError> {
        match self.get(key) {
            None => Ok(default),
            Some(x) => x
                .as_f64()
                .ok_or_else(|| self.error(format!("`{key}` must be a number, got {x}"))),
        }
    }

    /// A boolean, or `default` when absent.
    pub fn bool(&self, key: &str, default: bool) -> Result<bool, LoadError> {
        match self.get(key) {
            None => Ok(default),
            Some(x) => x
                .as_bool()
                .ok_or_else(|| self.error(format!("`{key}` must be true or false, got {x}"))),
        }
    }

    /// A list of strings, or `default` when absent.
    pub fn strings(&self, key: &str, default: &[&str]) -> Result<Vec<String>, LoadError> {
        match self.get(key) {
            None => Ok(default.iter().map(|s| s.to_string()).collect()),
            Some(x) => x
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|s| s.as_str().map(String::from))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| self.error(format!("`{key}` must be a list of strings, got {x}"))),
        }
    }

    /// A list of whole numbers, or `default` when absent.
    pub fn usizes(&self, key: &str, default: &[usize]) -> Result<Vec<usize>, LoadError> {
        match self.get(key) {
            None => Ok(default.to_vec()),
            Some(x) => self.list(key, x),
        }
    }

    /// A whole number repeated `len` times, or a list of `len` whole numbers (diffusers accepts
    /// both for per-block settings); `None` when absent.
    pub fn per_block(&self, key: &str, len: usize) -> Result<Option<Vec<usize>>, LoadError> {
        let Some(x) = self.get(key) else {
            return Ok(None);
        };
        let values = match as_usize(x) {
            Some(n) => vec![n; len],
            None => self.list(key, x)?,
        };
        if values.len() != len {
            return Err(self.error(format!(
                "`{key}` has {} entries, one per block ({len}) expected",
                values.len()
            )));
        }
        Ok(Some(values))
    }

    /// Fails unless `key` is absent or equal to one of `allowed` (settings this port does not
    /// implement).
    pub fn require(&self, key: &str, allowed: &[Value]) -> Result<(), LoadError> {
        match self.get(key) {
            Some(x) if !allowed.contains(x) => Err(self.error(format!(
                "`{key}` = {x} is not supported by this implementation"
            ))),
            _ => Ok(()),
        }
    }

    fn list(&self, key: &str, x: &Value) -> Result<Vec<usize>, LoadError> {
        x.as_array()
            .and_then(|a| a.iter().map(as_usize).collect::<Option<Vec<_>>>())
            .ok_or_else(|| self.error(format!("`{key}` must be a list of whole numbers, got {x}")))
    }
}

fn as_usize(x: &Value) -> Option<usize> {
    x.as_u64().map(|n| n as usize)
}
