//! FLUX's transformer blocks with diffusers' key names: AdaLN-Zero modulation, joint attention
//! with RMS-normalised queries and keys and rotary positions, the double-stream block (separate
//! image and text weights) and the single-stream block (parallel attention and MLP).

use burn::module::Module;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::nn::{
    gelu_tanh, load_linear, merge_heads, modulated_layer_norm, sdpa, split_heads, Linear,
    PackedLinear, RmsNorm,
};
use faceclip_core::weights::Weights;
use faceclip_core::LoadError;

use crate::rope::apply_rotary;

/// Epsilon of every norm in the FLUX transformer.
const EPS: f64 = 1e-6;

/// `norm(x)·(1 + scale) + shift` with per-sample `[batch, dim]` modulation.
pub(crate) fn modulate<B: Backend>(
    x: Tensor<B, 3>,
    shift: &Tensor<B, 2>,
    scale: &Tensor<B, 2>,
) -> Tensor<B, 3> {
    modulated_layer_norm(x, shift, scale, EPS)
}

/// `gate[:, None] · x`.
fn gated<B: Backend>(gate: &Tensor<B, 2>, x: Tensor<B, 3>) -> Tensor<B, 3> {
    x * gate.clone().unsqueeze_dim::<3>(1)
}

/// `linear(silu(temb))` split into chunks of `dim` (AdaLN-Zero / AdaLN-continuous): the
/// layers `{name}.linear` (`dim → parts·dim` each) of `names`, packed into one GEMM, give
/// `names.len() · parts` chunks, name by name.
#[derive(Module, Debug)]
pub(crate) struct Modulation<B: Backend> {
    linear: Linear<B>,
    chunks: usize,
}

impl<B: Backend> Modulation<B> {
    pub(crate) fn load<const N: usize>(
        vb: &Weights<B>,
        names: [&str; N],
        dim: usize,
        parts: usize,
    ) -> Result<Self, LoadError> {
        let names = names.map(|name| format!("{name}.linear"));
        let names = names.each_ref().map(String::as_str);
        let packed = PackedLinear::load(vb, names, dim, [parts * dim; N], true)?;
        Ok(Self {
            linear: packed.joint,
            chunks: N * parts,
        })
    }

    /// The chunks of `linear(silu_temb)`, where `silu_temb` is `silu(temb)`: computed once per
    /// step for every modulation.
    pub(crate) fn forward(&self, silu_temb: &Tensor<B, 2>) -> Vec<Tensor<B, 2>> {
        self.linear.forward(silu_temb.clone()).chunk(self.chunks, 1)
    }
}

/// The RMS norms of one stream's queries and keys, and its split into heads.
#[derive(Module, Debug)]
struct QkNorms<B: Backend> {
    norm_q: RmsNorm<B>,
    norm_k: RmsNorm<B>,
    heads: usize,
}

impl<B: Backend> QkNorms<B> {
    /// `names` = the q and k norms under `vb`.
    fn load(
        vb: &Weights<B>,
        names: [&str; 2],
        dim: usize,
        heads: usize,
    ) -> Result<Self, LoadError> {
        let head_dim = dim / heads;
        Ok(Self {
            norm_q: RmsNorm::load(&vb.pp(names[0]), head_dim, EPS)?,
            norm_k: RmsNorm::load(&vb.pp(names[1]), head_dim, EPS)?,
            heads,
        })
    }

    /// Projected `[batch, tokens, dim]` queries, keys and values as `[batch, heads, tokens,
    /// head_dim]` each, queries and keys normalised.
    fn forward(&self, [q, k, v]: [Tensor<B, 3>; 3]) -> [Tensor<B, 4>; 3] {
        let [q, k, v] = [q, k, v].map(|t| split_heads(t, self.heads));
        [self.norm_q.forward(q), self.norm_k.forward(k), v]
    }
}

/// Query, key and value projections of one stream (one GEMM), with RMS-normalised queries and
/// keys.
#[derive(Module, Debug)]
struct QkvProjection<B: Backend> {
    qkv: PackedLinear<B>,
    norms: QkNorms<B>,
}

impl<B: Backend> QkvProjection<B> {
    /// `names` = the q, k, v projections and the q, k norms under `vb`.
    fn load(
        vb: &Weights<B>,
        names: [&str; 5],
        dim: usize,
        heads: usize,
    ) -> Result<Self, LoadError> {
        Ok(Self {
            qkv: PackedLinear::load(vb, [names[0], names[1], names[2]], dim, [dim; 3], true)?,
            norms: QkNorms::load(vb, [names[3], names[4]], dim, heads)?,
        })
    }

    /// `[batch, heads, tokens, head_dim]` each.
    fn forward(&self, x: Tensor<B, 3>) -> [Tensor<B, 4>; 3] {
        self.norms.forward(self.qkv.forward(x))
    }
}

const IMAGE_QKV: [&str; 5] = ["to_q", "to_k", "to_v", "norm_q", "norm_k"];
const TEXT_QKV: [&str; 5] = [
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "norm_added_q",
    "norm_added_k",
];

/// Softmax attention over `[text; image]` tokens with rotary positions on queries and keys;
/// returns `[batch, tokens, dim]`.
fn joint_attention<B: Backend>(
    [q, k, v]: [Tensor<B, 4>; 3],
    rope: &(Tensor<B, 2>, Tensor<B, 2>),
) -> Tensor<B, 3> {
    let q = apply_rotary(q, &rope.0, &rope.1);
    let k = apply_rotary(k, &rope.0, &rope.1);
    merge_heads(sdpa(q, k, v, AttentionModuleOptions::default()))
}

/// Concatenates per-stream `[q, k, v]` along the token axis (text first).
fn concat_streams<B: Backend>(
    text: [Tensor<B, 4>; 3],
    image: [Tensor<B, 4>; 3],
) -> [Tensor<B, 4>; 3] {
    let [tq, tk, tv] = text;
    let [iq, ik, iv] = image;
    [
        Tensor::cat(vec![tq, iq], 2),
        Tensor::cat(vec![tk, ik], 2),
        Tensor::cat(vec![tv, iv], 2),
    ]
}

/// `ff.net.2(gelu_tanh(ff.net.0.proj(x)))`.
#[derive(Module, Debug)]
struct FeedForward<B: Backend> {
    proj: Linear<B>,
    out: Linear<B>,
}

impl<B: Backend> FeedForward<B> {
    fn load(vb: &Weights<B>, dim: usize) -> Result<Self, LoadError> {
        Ok(Self {
            proj: load_linear(&vb.pp("net.0.proj"), dim, 4 * dim, true)?,
            out: load_linear(&vb.pp("net.2"), 4 * dim, dim, true)?,
        })
    }

    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        self.out.forward(gelu_tanh(self.proj.forward(x)))
    }
}

/// `FluxTransformerBlock`: image and text streams with their own weights, one joint attention.
#[derive(Module, Debug)]
pub(crate) struct DoubleStreamBlock<B: Backend> {
    /// `norm1` (6 image chunks), then `norm1_context` (6 text chunks), as one GEMM.
    norms: Modulation<B>,
    image_qkv: QkvProjection<B>,
    text_qkv: QkvProjection<B>,
    to_out: Linear<B>,
    to_add_out: Linear<B>,
    ff: FeedForward<B>,
    ff_context: FeedForward<B>,
}

impl<B: Backend> DoubleStreamBlock<B> {
    pub(crate) fn load(vb: &Weights<B>, dim: usize, heads: usize) -> Result<Self, LoadError> {
        let attn = vb.pp("attn");
        Ok(Self {
            norms: Modulation::load(vb, ["norm1", "norm1_context"], dim, 6)?,
            image_qkv: QkvProjection::load(&attn, IMAGE_QKV, dim, heads)?,
            text_qkv: QkvProjection::load(&attn, TEXT_QKV, dim, heads)?,
            to_out: load_linear(&attn.pp("to_out.0"), dim, dim, true)?,
            to_add_out: load_linear(&attn.pp("to_add_out"), dim, dim, true)?,
            ff: FeedForward::load(&vb.pp("ff"), dim)?,
            ff_context: FeedForward::load(&vb.pp("ff_context"), dim)?,
        })
    }

    /// Returns the updated `(image, text)` streams; `silu_temb` is `silu(temb)`.
    pub(crate) fn forward(
        &self,
        image: Tensor<B, 3>,
        text: Tensor<B, 3>,
        silu_temb: &Tensor<B, 2>,
        rope: &(Tensor<B, 2>, Tensor<B, 2>),
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let m = self.norms.forward(silu_temb);
        let (shift, scale, gate, shift_mlp, scale_mlp, gate_mlp) =
            (&m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
        let (c_shift, c_scale, c_gate, c_shift_mlp, c_scale_mlp, c_gate_mlp) =
            (&m[6], &m[7], &m[8], &m[9], &m[10], &m[11]);

        let text_tokens = text.dims()[1];
        let qkv = concat_streams(
            self.text_qkv
                .forward(modulate(text.clone(), c_shift, c_scale)),
            self.image_qkv
                .forward(modulate(image.clone(), shift, scale)),
        );
        let joint = joint_attention(qkv, rope);
        let [b, n, d] = joint.dims();
        let text_attn = joint.clone().slice([0..b, 0..text_tokens, 0..d]);
        let image_attn = joint.slice([0..b, text_tokens..n, 0..d]);

        let image = image + gated(gate, self.to_out.forward(image_attn));
        let image = image.clone()
            + gated(
                gate_mlp,
                self.ff.forward(modulate(image, shift_mlp, scale_mlp)),
            );
        let text = text + gated(c_gate, self.to_add_out.forward(text_attn));
        let text = text.clone()
            + gated(
                c_gate_mlp,
                self.ff_context
                    .forward(modulate(text, c_shift_mlp, c_scale_mlp)),
            );
        (image, text)
    }
}

/// `FluxSingleTransformerBlock`: one stream over `[text; image]`, attention and MLP in
/// parallel; the q, k, v and MLP projections read the same input and run as one GEMM.
#[derive(Module, Debug)]
pub(crate) struct SingleStreamBlock<B: Backend> {
    norm: Modulation<B>,
    qkv_mlp: PackedLinear<B>,
    norms: QkNorms<B>,
    proj_out: Linear<B>,
}

impl<B: Backend> SingleStreamBlock<B> {
    pub(crate) fn load(vb: &Weights<B>, dim: usize, heads: usize) -> Result<Self, LoadError> {
        Ok(Self {
            norm: Modulation::load(vb, ["norm"], dim, 3)?,
            qkv_mlp: PackedLinear::load(
                vb,
                ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"],
                dim,
                [dim, dim, dim, 4 * dim],
                true,
            )?,
            norms: QkNorms::load(&vb.pp("attn"), ["norm_q", "norm_k"], dim, heads)?,
            proj_out: load_linear(&vb.pp("proj_out"), 5 * dim, dim, true)?,
        })
    }

    /// `silu_temb` is `silu(temb)`.
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        silu_temb: &Tensor<B, 2>,
        rope: &(Tensor<B, 2>, Tensor<B, 2>),
    ) -> Tensor<B, 3> {
        let m = self.norm.forward(silu_temb);
        let normed = modulate(x.clone(), &m[0], &m[1]);
        let [q, k, v, mlp] = self.qkv_mlp.forward(normed);
        let attn = joint_attention(self.norms.forward([q, k, v]), rope);
        let mlp = gelu_tanh(mlp);
        x + gated(
            &m[2],
            self.proj_out.forward(Tensor::cat(vec![attn, mlp], 2)),
        )
    }
}
