//! PyTorch-compatible building blocks shared by several models, each loadable from [`Weights`].
//!
//! [`Weights`]: crate::weights::Weights

mod activation;
mod attention;
mod layers;
mod linear;
mod norm;
mod resize;

pub use activation::{gelu_tanh, quick_gelu, relu6, Activation};
#[cfg(feature = "cuda")]
pub(crate) use attention::attention_scale;
pub use attention::{
    attention_padded_queries, attention_unfused, batched_matmul, merge_heads, sdpa, split_heads,
    PackedMultiheadAttention, FLASH_QUERY_BLOCK, MAX_SCORE_BYTES,
};
pub use layers::{
    conv_forward, load_conv2d, load_layer_norm, load_linear, BatchNorm1dEval, RmsNorm,
};
pub use linear::{linear, Linear, PackedLinear};
pub use norm::{group_norm, group_norm_silu, modulated_layer_norm, LayerNorm};
pub use resize::{bilinear_taps, resize_bilinear};
