//! The encoding of the last prompt seen, reused while the prompt stays the same (the negative
//! branch of both FaceCLIP encoders depends only on the negative prompt).

use std::sync::Mutex;

/// One cached `(prompt, encoding)` pair.
#[derive(Debug)]
pub(crate) struct PromptCache<T>(Mutex<Option<(String, T)>>);

impl<T: Clone> PromptCache<T> {
    /// An empty cache.
    pub(crate) fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// The cached encoding of `prompt`, or `encode()`'s result, which replaces the cache.
    pub(crate) fn get_or_encode<E>(
        &self,
        prompt: &str,
        encode: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut cache = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((cached, out)) = cache.as_ref() {
            if cached == prompt {
                return Ok(out.clone());
            }
        }
        let out = encode()?;
        *cache = Some((prompt.to_string(), out.clone()));
        Ok(out)
    }
}
