//! The T5 tokenizer of FLUX's `tokenizer_2` and FaceT5: a SentencePiece Unigram model read from
//! a Hugging Face `tokenizer.json` by the `tokenizers` crate, padded with `<pad>` to a fixed
//! length as `T5TokenizerFast(padding="max_length", max_length=512)` does.

use std::path::Path;

use burn::tensor::{backend::Backend, Int, Tensor};
use tokenizers::Tokenizer;

use super::{ids_tensor, TokenizerError};

/// A 187-token SentencePiece model trained like T5's by `tools/parity/make_facet5_fixtures.py`
/// and converted by transformers (the released file's structure, a tiny vocabulary): for tests
/// and the random demo pipeline.
const TINY_TOKENIZER: &[u8] = include_bytes!("../../assets/t5_tiny_tokenizer.json");

/// FLUX's and FaceT5's T5 sequence length.
pub const T5_MAX_LENGTH: usize = 512;

/// A T5 tokenizer producing fixed-length id sequences (`… </s> <pad>…`).
#[derive(Debug, Clone)]
pub struct T5Tokenizer {
    inner: Tokenizer,
    max_length: usize,
    pad_id: u32,
}

impl T5Tokenizer {
    /// Reads a `tokenizer.json` (FLUX.1 `tokenizer_2/tokenizer.json`, FaceCLIP `tokenizer/`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| TokenizerError::File {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// The bundled tiny tokenizer (187 tokens, `<pad>` 0, `</s>` 1, `<unk>` 2), trained on a few
    /// prompts: it matches the tiny test and demo models, not any released T5.
    pub fn tiny() -> Result<Self, TokenizerError> {
        Self::from_bytes(TINY_TOKENIZER, "<bundled tiny tokenizer>")
    }

    /// Parses the bytes of a `tokenizer.json`; `name` is used in error messages.
    pub fn from_bytes(json: &[u8], name: &str) -> Result<Self, TokenizerError> {
        let fail = |reason: String| TokenizerError::File {
            file: name.to_string(),
            reason,
        };
        let mut inner = Tokenizer::from_bytes(json).map_err(|e| fail(e.to_string()))?;
        let pad_id = inner
            .token_to_id("<pad>")
            .ok_or_else(|| fail("the vocabulary has no `<pad>` token".into()))?;
        if inner.token_to_id("</s>").is_none() {
            return Err(fail("the vocabulary has no `</s>` token".into()));
        }
        // Truncation and padding are ours: a long prompt is an error, not silently cut.
        inner
            .with_truncation(None)
            .map_err(|e| fail(e.to_string()))?;
        inner.with_padding(None);
        Ok(Self {
            inner,
            max_length: T5_MAX_LENGTH,
            pad_id,
        })
    }

    /// The same tokenizer producing `max_length` ids.
    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = max_length.max(1);
        self
    }

    /// The fixed sequence length (512 by default).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The padding id (0 for T5).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Ids of `text` with the end token `</s>` and no padding.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self
            .inner
            .encode(text, true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// [`encode`](Self::encode) padded to [`max_length`](Self::max_length); a prompt that does
    /// not fit is [`TokenizerError::TooLong`].
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = self.encode(text)?;
        if ids.len() > self.max_length {
            return Err(TokenizerError::TooLong {
                tokens: ids.len(),
                limit: self.max_length,
            });
        }
        ids.resize(self.max_length, self.pad_id);
        Ok(ids)
    }

    /// Tokenizes a batch into a `[batch, max_length]` integer tensor.
    pub fn tokenize_batch<B: Backend>(
        &self,
        texts: &[&str],
        device: &B::Device,
    ) -> Result<Tensor<B, 2, Int>, TokenizerError> {
        ids_tensor(texts, self.max_length, |t| self.tokenize(t), device)
    }
}
