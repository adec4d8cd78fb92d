//! The CLIP BPE tokenizer with OpenCLIP's rules (and the Hugging Face / FLUX variant), and the
//! T5 tokenizer ([`T5Tokenizer`]) read from a `tokenizer.json`.
//!
//! Text is cleaned ([`clean`](clean::clean)), split with OpenCLIP's pattern, mapped byte-wise to
//! printable characters and encoded by the `tokenizers` crate's BPE model (with the `</w>`
//! end-of-word marker). Sequences are `[SOT] + bpe + [EOT]`, cut to the context length with
//! the last position forced to EOT, then padded.

mod clean;
mod t5;

use std::io::Read;
use std::path::Path;

use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use regex::Regex;
use tokenizers::models::bpe::BPE;
use tokenizers::Model;

pub use clean::{clean, clean_hf};
pub use t5::{T5Tokenizer, T5_MAX_LENGTH};

/// The real CLIP merges list (`bpe_simple_vocab_16e6.txt.gz` from open_clip, MIT).
const BUNDLED_VOCAB: &[u8] = include_bytes!("../../assets/bpe_simple_vocab_16e6.txt.gz");
/// Number of merges CLIP uses from the list.
const MERGES: usize = 49152 - 256 - 2;
/// OpenCLIP's start-of-text token id.
pub const SOT: u32 = 49406;
/// OpenCLIP's end-of-text token id.
pub const EOT: u32 = 49407;
/// CLIP's context length.
pub const CONTEXT_LENGTH: usize = 77;
/// Pre-tokenisation alternatives after the two special tokens (matched case-insensitively).
const WORDS: &str = r"'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+";

/// Errors building or running the tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The merges file could not be read or decompressed.
    #[error("cannot read BPE vocabulary {file}: {reason}")]
    Vocab {
        /// The file (or `<bundled>`).
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The BPE model failed.
    #[error("BPE failed: {0}")]
    Bpe(String),
    /// A `tokenizer.json` could not be read or parsed.
    #[error("cannot load tokenizer {file}: {reason}")]
    File {
        /// The file (or `<memory>`).
        file: String,
        /// What went wrong.
        reason: String,
    },
    /// The tokenizer failed on a text.
    #[error("tokenization failed: {0}")]
    Encode(String),
    /// A prompt needs more tokens than the model reads.
    #[error("prompt is {tokens} tokens long (end token included), more than the {limit} the text encoder reads; shorten it")]
    TooLong {
        /// Tokens the prompt needs.
        tokens: usize,
        /// The maximum sequence length.
        limit: usize,
    },
}

/// Which reference tokenizer's rules to follow. Both share the vocabulary and BPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// OpenCLIP `SimpleTokenizer` (FaceCLIP-SDXL): ftfy-style fixes plus two HTML unescapes,
    /// literal `<start_of_text>` / `<end_of_text>` become special ids, pads with 0.
    OpenClip,
    /// Hugging Face `CLIPTokenizer` (FLUX's CLIP-L): ftfy-style fixes only, literal
    /// `<|startoftext|>` / `<|endoftext|>` become special ids, pads with EOT (49407).
    HuggingFace,
}

impl Flavor {
    fn specials(self) -> [&'static str; 2] {
        match self {
            Flavor::OpenClip => ["<start_of_text>", "<end_of_text>"],
            Flavor::HuggingFace => ["<|startoftext|>", "<|endoftext|>"],
        }
    }
}

/// CLIP BPE tokenizer.
pub struct ClipTokenizer {
    bpe: BPE,
    byte_chars: [char; 256],
    pattern: Regex,
    flavor: Flavor,
    context_length: usize,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("flavor", &self.flavor)
            .field("context_length", &self.context_length)
            .finish()
    }
}

/// GPT-2's reversible byte → printable character table.
fn byte_chars() -> [char; 256] {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut table = ['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('\0')
        } else {
            extra += 1;
            char::from_u32(255 + extra).unwrap_or('\0')
        };
    }
    table
}

impl ClipTokenizer {
    /// OpenCLIP rules (pad 0) from the bundled vocabulary.
    pub fn openclip() -> Result<Self, TokenizerError> {
        Self::from_gz_bytes(BUNDLED_VOCAB, "<bundled>", Flavor::OpenClip)
    }

    /// Hugging Face `CLIPTokenizer` rules (pad with EOT) from the bundled vocabulary.
    pub fn hf() -> Result<Self, TokenizerError> {
        Self::from_gz_bytes(BUNDLED_VOCAB, "<bundled>", Flavor::HuggingFace)
    }

    /// Reads a `bpe_simple_vocab_16e6.txt.gz` merges list from disk.
    pub fn from_file(path: impl AsRef<Path>, flavor: Flavor) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| TokenizerError::Vocab {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_gz_bytes(&bytes, &path.display().to_string(), flavor)
    }

    fn from_gz_bytes(bytes: &[u8], file: &str, flavor: Flavor) -> Result<Self, TokenizerError> {
        let vocab_err = |reason: String| TokenizerError::Vocab {
            file: file.to_string(),
            reason,
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_string(&mut text)
            .map_err(|e| vocab_err(e.to_string()))?;
        let merges: Vec<(String, String)> = text
            .lines()
            .skip(1)
            .take(MERGES)
            .map(|line| {
                let mut parts = line.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some(a), Some(b), None) => Ok((a.to_string(), b.to_string())),
                    _ => Err(vocab_err(format!("malformed merge line `{line}`"))),
                }
            })
            .collect::<Result<_, _>>()?;
        if merges.len() != MERGES {
            return Err(vocab_err(format!(
                "{} merges, expected {MERGES}",
                merges.len()
            )));
        }
        let byte_chars = byte_chars();
        // Vocabulary order of GPT-2's table: printable bytes first, then the remapped ones.
        let mut singles: Vec<char> = byte_chars.to_vec();
        singles.sort_by_key(|&c| c as u32);
        let mut tokens: Vec<String> = singles.iter().map(|c| c.to_string()).collect();
        tokens.extend(singles.iter().map(|c| format!("{c}</w>")));
        tokens.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        let vocab = tokens
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i as u32))
            .collect::<tokenizers::models::bpe::Vocab>();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .end_of_word_suffix("</w>".to_string())
            .build()
            .map_err(|e| vocab_err(e.to_string()))?;
        let [sot, eot] = flavor.specials().map(regex::escape);
        let pattern = Regex::new(&format!("(?i){sot}|{eot}|{WORDS}"))
            .map_err(|e| vocab_err(e.to_string()))?;
        Ok(Self {
            bpe,
            byte_chars,
            pattern,
            flavor,
            context_length: CONTEXT_LENGTH,
        })
    }

    /// The rules in use.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// The sequence length produced by [`tokenize`](Self::tokenize) (77).
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    /// BPE ids of `text` without start/end tokens or padding. A literal special token of the
    /// flavor (see [`Flavor`]) becomes its special id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let cleaned = match self.flavor {
            Flavor::OpenClip => clean(text),
            Flavor::HuggingFace => clean_hf(text),
        };
        let [sot, eot] = self.flavor.specials();
        let mut ids = Vec::new();
        for piece in self.pattern.find_iter(&cleaned) {
            match piece.as_str() {
                p if p == sot => ids.push(SOT),
                p if p == eot => ids.push(EOT),
                word => {
                    let mapped: String =
                        word.bytes().map(|b| self.byte_chars[b as usize]).collect();
                    let tokens = self
                        .bpe
                        .tokenize(&mapped)
                        .map_err(|e| TokenizerError::Bpe(e.to_string()))?;
                    ids.extend(tokens.into_iter().map(|t| t.id));
                }
            }
        }
        Ok(ids)
    }

    /// `[SOT] + encode(text) + [EOT]`, cut to 77 with EOT kept last, then padded to 77.
    /// An empty prompt gives `[SOT, EOT, pad…]`.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = Vec::with_capacity(self.context_length);
        ids.push(SOT);
        ids.extend(self.encode(text)?);
        ids.push(EOT);
        if ids.len() > self.context_length {
            ids.truncate(self.context_length);
            ids[self.context_length - 1] = EOT;
        }
        let pad = match self.flavor {
            Flavor::OpenClip => 0,
            Flavor::HuggingFace => EOT,
        };
        ids.resize(self.context_length, pad);
        Ok(ids)
    }

    /// Tokenizes a batch into an `[batch, 77]` integer tensor.
    pub fn tokenize_batch<B: Backend>(
        &self,
        texts: &[&str],
        device: &B::Device,
    ) -> Result<Tensor<B, 2, Int>, TokenizerError> {
        ids_tensor(texts, self.context_length, |t| self.tokenize(t), device)
    }
}

/// `[texts, length]` ids of every text, `tokenize` giving exactly `length` ids per text.
fn ids_tensor<B: Backend>(
    texts: &[&str],
    length: usize,
    tokenize: impl Fn(&str) -> Result<Vec<u32>, TokenizerError>,
    device: &B::Device,
) -> Result<Tensor<B, 2, Int>, TokenizerError> {
    let mut flat = Vec::with_capacity(texts.len() * length);
    for text in texts {
        flat.extend(tokenize(text)?.into_iter().map(i64::from));
    }
    Ok(Tensor::from_data(
        TensorData::new(flat, [texts.len(), length]),
        device,
    ))
}
