//! Who may use a prepared context: inputs a model computes once per generation (a text
//! context's keys and values, embedded conditioning) are valid only for the model that computed
//! them, on the device they live on.

use std::fmt::{self, Debug, Display};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::InputError;

/// A loaded model's identity: distinct per load, shared by the model's clones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelId(u64);

/// The source of [`ModelId`]s.
static NEXT_MODEL_ID: AtomicU64 = AtomicU64::new(0);

impl ModelId {
    /// An identity no other call has returned in this process.
    pub fn unique() -> Self {
        Self(NEXT_MODEL_ID.fetch_add(1, Ordering::Relaxed))
    }
}

impl Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The model and device a prepared context was made by and on.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedBy<D> {
    model: ModelId,
    device: D,
}

impl<D: Debug + PartialEq> PreparedBy<D> {
    /// Records `model` and `device` as the preparer.
    pub fn new(model: ModelId, device: D) -> Self {
        Self { model, device }
    }

    /// Refuses the context (`what`, for the message) for another model than its preparer, or
    /// for an input on another device.
    pub fn check(&self, what: &str, model: ModelId, device: &D) -> Result<(), InputError> {
        if self.model == model && &self.device == device {
            return Ok(());
        }
        Err(InputError::Value {
            what: what.into(),
            reason: format!(
                "prepared by model {} on {:?}, used by model {model} for an input on {device:?}; \
                 prepare it with this model on the input's device",
                self.model, self.device
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_preparing_model_on_its_device_passes() {
        let (model, other) = (ModelId::unique(), ModelId::unique());
        assert_ne!(model, other);
        let by = PreparedBy::new(model, "gpu:0");
        assert!(by.check("context", model, &"gpu:0").is_ok());
        let err = by
            .check("context", other, &"gpu:0")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("prepared by model {model}")), "{err}");
        assert!(err.contains(&format!("used by model {other}")), "{err}");
        let err = by
            .check("context", model, &"gpu:1")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("context: ") && err.contains("\"gpu:1\""),
            "{err}"
        );
    }
}
