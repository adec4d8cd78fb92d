//! GPU benchmark: the kernels and stages the SDXL pipeline is made of, timed on one Burn backend.
//!
//! Built beforehand on any x86-64 machine and run on the GPU host by `benches/gpu/run.sh`, which
//! also runs `benches/gpu/torch_ref.py` (the same shapes in PyTorch) and merges both into one
//! table with `benches/gpu/report.py`.
//!
//! ```text
//! cargo bench --bench gpu --features wgpu,cuda --no-run
//! gpu --backend cuda|cuda-bf16|wgpu|ndarray [--small] [--iters N] [--only NAME,NAME]
//!     [--burn-kernels] [--attention cudnn|flash|cublaslt] [--memory preset|fitted]
//!     [--layout dense|pitched] [--conv legacy|graph] [--calls blocking|queued]
//! ```
//!
//! On CUDA, linear layers run on cuBLASLt and convolutions on cuDNN when they load
//! (`--burn-kernels`: Burn's own); the run ends with a line per library on stderr saying how
//! many operations took that path. The models' attention on CUDA is cuDNN's fused kernel (bf16)
//! by default; `--attention flash` makes it Burn's (padded) flash kernels, `--attention
//! cublaslt` two batched cuBLASLt GEMMs around a softmax. The kernel table times all three.
//! `--memory fitted` lays CUDA's memory pool out with `CudaMemoryPools::Fitted` instead of
//! CubeCL's preset; `--layout pitched` lays CUDA tensors out with CubeCL's padded rows instead
//! of dense (`CudaTensorLayout`); `--conv graph` runs the convolutions through cuDNN's graph
//! API instead of its legacy call (`CudaConvolution`); `--calls queued` queues the libraries'
//! calls on CubeCL's device thread without waiting once a call of their plan has run
//! (`CudaLibraryCalls`). Each of these four names the rows `<case>_conv_graph`,
//! `<case>_queued`, `<case>_fitted` or `<case>_pitched` (in that order).
//!
//! Each case runs `warmup` times (kernel compilation and autotuning happen there; the first call's
//! time is reported apart as `first_call_s`), then is timed two ways on the host:
//! `iters` calls each followed by a device sync (median), and `iters` calls followed by one sync
//! (mean per call, which approaches the device time; `host_ms` is the part of it until the last
//! call returned, before the sync: when it is close to the mean, the host sets the pace). One
//! JSON object per case goes to stdout, with `peak_reserved_mb`: the most the GPU backend's
//! memory pool held after any timed call, inputs and weights included (`live_at_start_mb`: what
//! was live before the first timed call; `warmup_peak_reserved_mb`: the pool's peak over the
//! warm-up, autotuning's buffers included; `null` on ndarray). Each row also has, per batched
//! call, the NVIDIA libraries' operations (`cublaslt_calls`, `cudnn_calls`), the host time they
//! took (`cublaslt_host_ms`, `cudnn_host_ms`; `*_library_ms`: the part inside the libraries'
//! own functions; `*_queue_ms`: the time until CubeCL's device thread took the call, which
//! the caller waited unless the call was queued), the calls queued without waiting
//! (`*_queued`) and the plans they made (`*_plans`; all 0 off CUDA).
//! `--small` shrinks every shape so a CPU backend finishes in seconds (a dry run of the program).

use std::ops::ControlFlow;
use std::time::Instant;

use burn::nn::conv::Conv2dConfig;
use burn::nn::{GroupNormConfig, LayerNormConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::backend::Backend;
use burn::tensor::module::{attention, conv2d};
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};
use burn::tensor::{Distribution, Tensor};
use faceclip::core::backend::{
    device_memory, is_cuda, library_stats, set_cuda_attention, set_cuda_convolution,
    set_cuda_library_calls, set_cuda_memory_pools, set_cuda_tensor_layout, use_library,
    CudaAttention, CudaConvolution, CudaLibraryCalls, CudaMemoryPools, CudaTensorLayout,
    NvidiaLibrary,
};
use faceclip::core::nn::{
    attention_padded_queries, attention_unfused, conv_forward, group_norm_silu, linear, sdpa,
    LayerNorm, FLASH_QUERY_BLOCK,
};
use faceclip::core::schedule::{EulerDiscrete, NoiseSchedule};
use faceclip::core::weights::Weights;
use faceclip::dit::{image_ids, FluxConfig, FluxInput, FluxTransformer2DModel};
use faceclip::fusion::{FaceClipConfig, FaceClipEncoder};
use faceclip::unet::{
    denoise, AutoencoderKl, Conditioning, TextTimeCondition, UNet2DConditionModel, UNetConfig,
    VaeConfig,
};

/// Command-line options.
#[derive(Clone)]
struct Options {
    backend: String,
    small: bool,
    iters: usize,
    warmup: usize,
    only: Option<Vec<String>>,
    /// Linear layers and convolutions on Burn's kernels even where cuBLASLt and cuDNN load.
    burn_kernels: bool,
    /// The models' attention on CUDA: cuDNN's fused kernel, Burn's flash kernels, or cuBLASLt
    /// unfused.
    attention: CudaAttention,
    /// The cuDNN interface of the convolutions on CUDA: legacy or graph (whose rows are named
    /// `<case>_conv_graph`).
    convolution: CudaConvolution,
    /// How the libraries' calls reach the device thread on CUDA: waited for, or queued once
    /// their plan has run (rows named `<case>_queued`).
    calls: CudaLibraryCalls,
    /// The CUDA memory pools' layout: CubeCL's preset or fitted to the tensors.
    memory: CudaMemoryPools,
    /// How CUDA tensors are laid out: dense, or CubeCL's padded rows.
    layout: CudaTensorLayout,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            backend: "cuda".into(),
            small: false,
            iters: 10,
            warmup: 2,
            only: None,
            burn_kernels: false,
            attention: CudaAttention::Cudnn,
            convolution: CudaConvolution::CudnnLegacy,
            calls: CudaLibraryCalls::Blocking,
            memory: CudaMemoryPools::CubeclPreset,
            layout: CudaTensorLayout::Dense,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--backend" => options.backend = value("--backend")?,
                "--small" => options.small = true,
                "--burn-kernels" => options.burn_kernels = true,
                "--attention" => {
                    options.attention = match value("--attention")?.as_str() {
                        "cudnn" => CudaAttention::Cudnn,
                        "flash" => CudaAttention::Flash,
                        "cublaslt" => CudaAttention::CublasLt,
                        other => {
                            return Err(format!("--attention {other}: cudnn, flash or cublaslt"))
                        }
                    }
                }
                "--conv" => {
                    options.convolution = match value("--conv")?.as_str() {
                        "legacy" => CudaConvolution::CudnnLegacy,
                        "graph" => CudaConvolution::CudnnGraph,
                        other => return Err(format!("--conv {other}: legacy or graph")),
                    }
                }
                "--calls" => {
                    options.calls = match value("--calls")?.as_str() {
                        "blocking" => CudaLibraryCalls::Blocking,
                        "queued" => CudaLibraryCalls::Queued,
                        other => return Err(format!("--calls {other}: blocking or queued")),
                    }
                }
                "--memory" => {
                    options.memory = match value("--memory")?.as_str() {
                        "preset" => CudaMemoryPools::CubeclPreset,
                        "fitted" => CudaMemoryPools::Fitted,
                        other => return Err(format!("--memory {other}: preset or fitted")),
                    }
                }
                "--layout" => {
                    options.layout = match value("--layout")?.as_str() {
                        "dense" => CudaTensorLayout::Dense,
                        "pitched" => CudaTensorLayout::Pitched,
                        other => return Err(format!("--layout {other}: dense or pitched")),
                    }
                }
                "--iters" => {
                    options.iters = value("--iters")?
                        .parse()
                        .map_err(|e| format!("--iters: {e}"))?
                }
                "--warmup" => {
                    options.warmup = value("--warmup")?
                        .parse()
                        .map_err(|e| format!("--warmup: {e}"))?
                }
                "--only" => {
                    options.only = Some(value("--only")?.split(',').map(String::from).collect())
                }
                // `cargo bench` passes `--bench`; ignore it.
                "--bench" => {}
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if options.iters == 0 {
            return Err("--iters must be at least 1".into());
        }
        Ok(options)
    }

    fn wants(&self, case: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| case.starts_with(n.as_str())))
    }

    /// What the rows' case names end with when the CUDA settings are not the defaults:
    /// `_conv_graph` (`--conv graph`), `_queued` (`--calls queued`), `_fitted` (`--memory
    /// fitted`), `_pitched` (`--layout pitched`), so one results file can hold a case timed
    /// several ways.
    fn variant(&self) -> String {
        [
            (
                self.convolution == CudaConvolution::CudnnGraph,
                "_conv_graph",
            ),
            (self.calls == CudaLibraryCalls::Queued, "_queued"),
            (self.memory == CudaMemoryPools::Fitted, "_fitted"),
            (self.layout == CudaTensorLayout::Pitched, "_pitched"),
        ]
        .iter()
        .filter(|(differs, _)| *differs)
        .map(|(_, suffix)| *suffix)
        .collect()
    }

    /// Whether any of `cases` is wanted (a group of cases makes its inputs only then).
    fn wants_any(&self, cases: &[&str]) -> bool {
        cases.iter().any(|case| self.wants(case))
    }
}

/// Times `f` (which must enqueue GPU work and return without reading it back) and prints a
/// JSON line.
fn time_case<B: Backend, T>(
    options: &Options,
    device: &B::Device,
    name: &str,
    shape: &str,
    flop: f64,
    mut f: impl FnMut() -> T,
) {
    if !options.wants(name) {
        return;
    }
    let sync = || B::sync(device).expect("device sync");
    eprintln!("{name}: warm-up ({} calls)", options.warmup);
    let mut warmup_pool = PoolPeak::<B>::start(device);
    let started = Instant::now();
    let mut first_call_s = 0.0;
    for call in 0..options.warmup {
        let t = Instant::now();
        drop(f());
        sync();
        let seconds = t.elapsed().as_secs_f64();
        warmup_pool.sample();
        // Progress on stderr, so a run cut short by its time limit still says how far it got.
        eprintln!("{name}: warm-up call {} took {seconds:.3} s", call + 1);
        if call == 0 {
            first_call_s = seconds;
        }
    }
    let warmup_s = started.elapsed().as_secs_f64();
    // Autotuning's extra buffers stay out of the timed calls' figure.
    let mut pool = PoolPeak::<B>::start(device);
    let mut synced = Vec::with_capacity(options.iters);
    for _ in 0..options.iters {
        let t = Instant::now();
        drop(f());
        sync();
        synced.push(t.elapsed().as_secs_f64() * 1e3);
        pool.sample();
    }
    synced.sort_by(f64::total_cmp);
    let median = synced[synced.len() / 2];
    let libraries_before = NVIDIA_LIBRARIES.map(library_stats);
    let t = Instant::now();
    for _ in 0..options.iters {
        drop(f());
    }
    // What the host spent queueing the calls: near `batched` when the host, not the device,
    // sets the pace (or when the device's queue is full and the host waits on it).
    let host = t.elapsed().as_secs_f64() * 1e3 / options.iters as f64;
    sync();
    let batched = t.elapsed().as_secs_f64() * 1e3 / options.iters as f64;
    pool.sample();
    // Per call: the NVIDIA libraries' operations, the host time they took, and plans made.
    let per_call = |total: u64| total as f64 / options.iters as f64;
    let libraries = NVIDIA_LIBRARIES
        .iter()
        .zip(&libraries_before)
        .map(|(library, before)| {
            let after = library_stats(*library);
            format!(
                "\"{name}_calls\":{:.1},\"{name}_host_ms\":{:.4},\"{name}_library_ms\":{:.4},\
                 \"{name}_queue_ms\":{:.4},\"{name}_queued\":{:.1},\"{name}_plans\":{:.1},",
                per_call(after.launched - before.launched),
                per_call(after.host_micros - before.host_micros) / 1e3,
                per_call(after.library_micros - before.library_micros) / 1e3,
                per_call(after.queue_micros - before.queue_micros) / 1e3,
                per_call(after.queued - before.queued),
                per_call(after.plans - before.plans),
                name = library.name().to_lowercase(),
            )
        })
        .collect::<String>();
    let variant = options.variant();
    println!(
        "{{\"impl\":\"burn\",\"backend\":\"{}\",\"case\":\"{name}{variant}\",\"shape\":\"{shape}\",\
         \"median_synced_ms\":{median:.4},\"mean_batched_ms\":{batched:.4},\"host_ms\":{host:.4},\
         \"flop\":{flop:e},{libraries}\
         \"first_call_s\":{first_call_s:.2},\"warmup_s\":{warmup_s:.2},\"iters\":{},\
         \"peak_reserved_mb\":{},\"live_at_start_mb\":{},\"warmup_peak_reserved_mb\":{}}}",
        options.backend,
        options.iters,
        pool.mib(),
        pool.live_at_start_mib(),
        warmup_pool.mib()
    );
}

/// The most a GPU backend's memory pool reserved over a stretch of calls, sampled after each
/// (pages stay reserved once taken, so this is the stretch's peak); nothing on ndarray.
struct PoolPeak<'a, B: Backend> {
    device: &'a B::Device,
    bytes: Option<u64>,
    /// Bytes live in the pool when the stretch started: the weights and inputs.
    live_at_start: Option<u64>,
}

impl<'a, B: Backend> PoolPeak<'a, B> {
    /// Starts a stretch: pages no live tensor uses are returned first, so what earlier calls
    /// left does not count; the live inputs and weights do.
    fn start(device: &'a B::Device) -> Self {
        B::memory_cleanup(device);
        B::sync(device).expect("device sync");
        let memory = device_memory::<B>(device);
        Self {
            device,
            bytes: memory.map(|m| m.reserved_bytes),
            live_at_start: memory.map(|m| m.in_use_bytes),
        }
    }

    /// Takes the pool's size now into the peak (after a sync, for a settled figure).
    fn sample(&mut self) {
        if let (Some(peak), Some(now)) = (self.bytes.as_mut(), device_memory::<B>(self.device)) {
            *peak = (*peak).max(now.reserved_bytes);
        }
    }

    /// The peak in MiB as a JSON number, or `null`.
    fn mib(&self) -> String {
        json_mib(self.bytes)
    }

    /// What was live at the start in MiB as a JSON number, or `null`.
    fn live_at_start_mib(&self) -> String {
        json_mib(self.live_at_start)
    }
}

/// Bytes as MiB in a JSON number, or `null`.
fn json_mib(bytes: Option<u64>) -> String {
    bytes.map_or("null".into(), |bytes| {
        format!("{:.1}", bytes as f64 / f64::from(1 << 20))
    })
}

fn uniform<B: Backend, const D: usize>(shape: [usize; D], device: &B::Device) -> Tensor<B, D> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), device)
}

/// The kernel table: matmul, the GEGLU projection, attention, convolution, GroupNorm + SiLU and
/// LayerNorm at UNet shapes. Each group makes its inputs only when one of its cases is wanted.
fn kernels<B: Backend>(options: &Options, device: &B::Device) {
    matmul_cases::<B>(options, device);
    linear_cases::<B>(options, device);
    attention_cases::<B>(options, device);
    conv_cases::<B>(options, device);
    group_norm_cases::<B>(options, device);
    layer_norm_cases::<B>(options, device);
    launch_cases::<B>(options, device);
}

/// The NVIDIA libraries whose work each case counts (nothing off CUDA).
const NVIDIA_LIBRARIES: [NvidiaLibrary; 2] = [NvidiaLibrary::CublasLt, NvidiaLibrary::Cudnn];

/// Calls chained in one `launch_*` case.
const LAUNCH_CALLS: usize = 256;

/// What one call of each kind costs the host: [`LAUNCH_CALLS`] chained calls on operands so
/// small that the device finishes each at once, so `host_ms / LAUNCH_CALLS` is the host's cost
/// of queueing one (a UNet step makes about 2 000 such calls). The models' entries (on CUDA:
/// cuBLASLt, cuDNN, the fused group norm), Burn's matmul, and Burn's element-wise ops (three per
/// call, which its fusion merges into few kernels).
fn launch_cases<B: Backend>(options: &Options, device: &B::Device) {
    let n = LAUNCH_CALLS;
    let chain =
        |name: &str, shape: &str, step: &dyn Fn(Tensor<B, 4>) -> Tensor<B, 4>, x: Tensor<B, 4>| {
            time_case::<B, _>(
                options,
                device,
                name,
                &format!("{n} calls, {shape}"),
                0.0,
                || (0..n).fold(x.clone(), |y, _| step(y)),
            );
        };
    if options.wants("launch_linear") {
        let weight = uniform::<B, 2>([64, 64], device).mul_scalar(0.1);
        chain(
            "launch_linear",
            "[1,1,8,64]x64",
            &|y| linear(y, &weight, None),
            uniform([1, 1, 8, 64], device),
        );
    }
    if options.wants("launch_matmul") {
        let weight = uniform::<B, 4>([1, 1, 64, 64], device).mul_scalar(0.1);
        chain(
            "launch_matmul",
            "[1,1,8,64]x64",
            &|y| y.matmul(weight.clone()),
            uniform([1, 1, 8, 64], device),
        );
    }
    if options.wants("launch_conv") {
        let conv = Conv2dConfig::new([16, 16], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init::<B>(device);
        chain(
            "launch_conv",
            "[1,16,8,8] 3x3",
            &|y| conv_forward(&conv, y),
            uniform([1, 16, 8, 8], device),
        );
    }
    if options.wants("launch_attention") {
        let (k, v) = (
            uniform::<B, 4>([1, 2, 16, 64], device),
            uniform::<B, 4>([1, 2, 16, 64], device),
        );
        let options = AttentionModuleOptions::default();
        chain(
            "launch_attention",
            "q,k,v [1,2,16,64]",
            &|y| sdpa(y, k.clone(), v.clone(), options),
            uniform([1, 2, 16, 64], device),
        );
    }
    if options.wants("launch_group_norm") {
        let norm = GroupNormConfig::new(8, 32).init::<B>(device);
        chain(
            "launch_group_norm",
            "[1,32,8,8] 8 groups + SiLU",
            &|y| group_norm_silu(&norm, y),
            uniform([1, 32, 8, 8], device),
        );
    }
    if options.wants("launch_elementwise") {
        chain(
            "launch_elementwise",
            "[1,1,8,64] mul, exp, mul",
            &|y| y.mul_scalar(0.999).exp().mul_scalar(0.5),
            uniform([1, 1, 8, 64], device),
        );
    }
}

/// A square matmul on the models' entry and on Burn's matmul.
fn matmul_cases<B: Backend>(options: &Options, device: &B::Device) {
    if !options.wants_any(&["matmul", "matmul_burn"]) {
        return;
    }
    let n = if options.small { 256 } else { 8192 };
    let (a, b) = (
        uniform::<B, 2>([n, n], device),
        uniform::<B, 2>([n, n], device),
    );
    // The models' entry (cuBLASLt on CUDA unless `--burn-kernels`), then Burn's matmul.
    time_case::<B, _>(
        options,
        device,
        "matmul",
        &format!("{n}x{n}x{n}"),
        2.0 * (n as f64).powi(3),
        || linear(a.clone(), &b, None),
    );
    time_case::<B, _>(
        options,
        device,
        "matmul_burn",
        &format!("{n}x{n}x{n}"),
        2.0 * (n as f64).powi(3),
        || a.clone().matmul(b.clone()),
    );
}

/// The UNet's widest linear layer (a 640-wide block's GEGLU projection), the weight a
/// transposed view of PyTorch's `[out, in]` as the loader makes it.
fn linear_cases<B: Backend>(options: &Options, device: &B::Device) {
    if !options.wants_any(&["linear_geglu", "linear_geglu_burn"]) {
        return;
    }
    let (rows, d_in, d_out) = if options.small {
        (2 * 96, 64, 512)
    } else {
        (2 * 3888, 640, 5120)
    };
    let x = uniform::<B, 2>([rows, d_in], device);
    let weight = uniform::<B, 2>([d_out, d_in], device)
        .mul_scalar(0.05)
        .transpose();
    let bias = uniform::<B, 1>([d_out], device);
    let flop = 2.0 * (rows * d_in * d_out) as f64;
    let shape = format!("[{rows},{d_in}]x{d_out}");
    time_case::<B, _>(options, device, "linear_geglu", &shape, flop, || {
        linear(x.clone(), &weight, Some(&bias))
    });
    time_case::<B, _>(options, device, "linear_geglu_burn", &shape, flop, || {
        burn::tensor::module::linear(x.clone(), weight.clone(), Some(bias.clone()))
    });
}

/// Attention at the UNet's and the VAE's shapes: Burn's op, unfused, Burn's flash kernels with
/// padded queries, and the models' entry.
fn attention_cases<B: Backend>(options: &Options, device: &B::Device) {
    let attn_cases: [(&str, [usize; 4], usize); 4] = if options.small {
        [
            ("self_attention_64", [2, 2, 96, 16], 96),
            ("self_attention_32", [2, 4, 24, 16], 24),
            ("cross_attention_64", [2, 2, 96, 16], 7),
            ("self_attention_vae", [1, 1, 96, 32], 96),
        ]
    } else {
        [
            ("self_attention_64", [2, 10, 3888, 64], 3888),
            ("self_attention_32", [2, 20, 972, 64], 972),
            ("cross_attention_64", [2, 10, 3888, 64], 77),
            // The VAE's mid-block attention at 1152×864: one 512-wide head.
            ("self_attention_vae", [1, 1, 15552, 512], 15552),
        ]
    };
    for (name, [bs, h, lq, d], lk) in attn_cases {
        let variants = ["", "_unfused", "_flash", "_sdpa"].map(|suffix| format!("{name}{suffix}"));
        if !options.wants_any(&variants.each_ref().map(String::as_str)) {
            continue;
        }
        let q = uniform::<B, 4>([bs, h, lq, d], device);
        let k = uniform::<B, 4>([bs, h, lk, d], device);
        let v = uniform::<B, 4>([bs, h, lk, d], device);
        time_case::<B, _>(
            options,
            device,
            name,
            &format!("q[{bs},{h},{lq},{d}] kv {lk}"),
            4.0 * (bs * h * lq * lk * d) as f64,
            || {
                attention(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    None,
                    None,
                    AttentionModuleOptions::default(),
                )
            },
        );
        // Two strided batched GEMMs (cuBLASLt on CUDA) around Burn's softmax, what
        // `set_cuda_attention(CudaAttention::CublasLt)` makes the models use.
        time_case::<B, _>(
            options,
            device,
            &variants[1],
            &format!("q[{bs},{h},{lq},{d}] kv {lk}"),
            4.0 * (bs * h * lq * lk * d) as f64,
            || attention_unfused(q.clone(), k.clone(), v.clone(), None),
        );
        // Burn's attention with the queries padded to a multiple of 128 on CUDA, where only
        // such lengths reach its flash-attention kernels.
        time_case::<B, _>(
            options,
            device,
            &variants[2],
            &format!("q[{bs},{h},{lq},{d}] kv {lk}"),
            4.0 * (bs * h * lq * lk * d) as f64,
            || {
                attention_padded_queries(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    AttentionModuleOptions::default(),
                    FLASH_QUERY_BLOCK,
                )
            },
        );
        // The models' entry point: on CUDA what `--attention` chose (by default cuDNN's fused
        // kernel for bf16, else the padded flash kernels).
        time_case::<B, _>(
            options,
            device,
            &variants[3],
            &format!("q[{bs},{h},{lq},{d}] kv {lk}"),
            4.0 * (bs * h * lq * lk * d) as f64,
            || {
                sdpa(
                    q.clone(),
                    k.clone(),
                    v.clone(),
                    AttentionModuleOptions::default(),
                )
            },
        );
    }
}

/// A 3×3 convolution of the UNet's second level on the models' entry and on Burn's.
fn conv_cases<B: Backend>(options: &Options, device: &B::Device) {
    if !options.wants_any(&["conv3x3", "conv3x3_burn"]) {
        return;
    }
    let [bs, c, h, w] = if options.small {
        [2, 32, 12, 9]
    } else {
        [2, 640, 72, 54]
    };
    let x = uniform::<B, 4>([bs, c, h, w], device);
    let conv = Conv2dConfig::new([c, c], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init::<B>(device);
    let shape = format!("[{bs},{c},{h},{w}] {c}->{c}");
    let flop = 2.0 * (bs * c * h * w * c * 9) as f64;
    // The models' entry (cuDNN on CUDA unless `--burn-kernels`), then Burn's convolution.
    time_case::<B, _>(options, device, "conv3x3", &shape, flop, || {
        conv_forward(&conv, x.clone())
    });
    time_case::<B, _>(options, device, "conv3x3_burn", &shape, flop, || {
        conv2d(
            x.clone(),
            conv.weight.val(),
            conv.bias.as_ref().map(|b| b.val()),
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        )
    });
}

/// GroupNorm + SiLU at the UNet's first level, the models' fused kernel and Burn's ops.
fn group_norm_cases<B: Backend>(options: &Options, device: &B::Device) {
    if !options.wants_any(&["groupnorm_silu", "groupnorm_silu_burn"]) {
        return;
    }
    let [bs, c, h, w] = if options.small {
        [2, 32, 24, 18]
    } else {
        [2, 320, 144, 108]
    };
    let x = uniform::<B, 4>([bs, c, h, w], device);
    let norm = GroupNormConfig::new(32, c).init::<B>(device);
    // The models' entry point (one fused kernel on the CubeCL backends), then Burn's own ops.
    time_case::<B, _>(
        options,
        device,
        "groupnorm_silu",
        &format!("[{bs},{c},{h},{w}] 32 groups"),
        0.0,
        || group_norm_silu(&norm, x.clone()),
    );
    time_case::<B, _>(
        options,
        device,
        "groupnorm_silu_burn",
        &format!("[{bs},{c},{h},{w}] 32 groups"),
        0.0,
        || silu(norm.forward(x.clone())),
    );
}

/// LayerNorm at the UNet's first transformer, the models' fused kernel and Burn's.
fn layer_norm_cases<B: Backend>(options: &Options, device: &B::Device) {
    if !options.wants_any(&["layernorm", "layernorm_burn"]) {
        return;
    }
    let [bs, n, c] = if options.small {
        [2, 96, 64]
    } else {
        [2, 3888, 640]
    };
    let x = uniform::<B, 3>([bs, n, c], device);
    let burn_norm = LayerNormConfig::new(c).init::<B>(device);
    let norm = LayerNorm {
        gamma: burn_norm.gamma.clone(),
        beta: burn_norm.beta.clone(),
        epsilon: 1e-5,
    };
    // The models' LayerNorm (one fused kernel on the CubeCL backends), then Burn's.
    time_case::<B, _>(
        options,
        device,
        "layernorm",
        &format!("[{bs},{n},{c}]"),
        0.0,
        || norm.forward(x.clone()),
    );
    time_case::<B, _>(
        options,
        device,
        "layernorm_burn",
        &format!("[{bs},{n},{c}]"),
        0.0,
        || burn_norm.forward(x.clone()),
    );
}

/// The stage table, random weights at real sizes: one SDXL UNet step with guidance (batch 2, the
/// headline number, first), the same step's fixed cost (`unet_overhead`: [`sdxl_narrow`] on a
/// small latent), SDXL VAE decode, the FaceCLIP encoder, the UNet's levels 1 and 2 alone, the
/// whole 50-step image, one FLUX.1-dev transformer step.
fn stages<B: Backend>(options: &Options, device: &B::Device) {
    let s = options.small;
    let latent = stage_latent(options);
    if options.wants_any(&["unet_step", "unet_step_prepared"]) {
        unet_case::<B>(options, device, "unet_step", UNetConfig::sdxl(), latent, 0);
    }
    if options.wants("unet_overhead") {
        let config = sdxl_narrow();
        unet_case::<B>(options, device, "unet_overhead", config, OVERHEAD_LATENT, 0);
    }
    if options.wants("vae_decode") {
        let vae = AutoencoderKl::<B>::load(&Weights::random(device), VaeConfig::sdxl())
            .expect("SDXL VAE with random weights");
        let [h, w] = if s { [8, 6] } else { [144, 108] };
        let latents = Tensor::<B, 4>::random([1, 4, h, w], Distribution::Normal(0.0, 1.0), device);
        time_case::<B, _>(
            options,
            device,
            "vae_decode",
            &format!("latent [1,4,{h},{w}] -> {}x{}", h * 8, w * 8),
            0.0,
            || vae.decode(latents.clone()).expect("decode"),
        );
    }
    if options.wants("faceclip_encoder") && !s {
        let encoder = FaceClipEncoder::<B>::load(&Weights::random(device), &FaceClipConfig::sdxl())
            .expect("FaceCLIP encoder with random weights");
        let face =
            Tensor::<B, 4>::random([1, 3, 448, 448], Distribution::Uniform(0.0, 1.0), device);
        time_case::<B, _>(
            options,
            device,
            "faceclip_encoder",
            "face 448 + prompt -> [1,77,2048] + [1,1280]",
            0.0,
            || {
                encoder
                    .encode(
                        face.clone(),
                        &["a woman with short red hair, in sunlight"],
                        &[true],
                    )
                    .expect("encode")
            },
        );
    }
    // The UNet's levels on their own: what `run.sh` warms in parallel; also a per-level profile.
    for level in [1, 2] {
        let name = format!("unet_level{level}");
        if options.wants(&name) {
            unet_case::<B>(options, device, &name, sdxl_level(level), latent, level);
        }
    }
    if options.wants("sdxl_image") {
        sdxl_image::<B>(options, device);
    }
    if options.wants_any(&["flux_step", "flux_step_prepared"]) {
        flux_step::<B>(options, device);
    }
}

/// Guidance scale of the whole-image case (the FaceCLIP-SDXL script's default).
const IMAGE_GUIDANCE: f64 = 5.0;

/// The whole SDXL image after encoding: 50 Euler steps with guidance (each a UNet call on batch
/// 2) and the VAE decode of the 1152×864 image, random weights and embeddings; timed once
/// after one warm-up call (`--small`: 2 steps at 128×96).
fn sdxl_image<B: Backend>(options: &Options, device: &B::Device) {
    let unet = UNet2DConditionModel::<B>::load(&Weights::random(device), UNetConfig::sdxl())
        .expect("SDXL UNet with random weights");
    let vae = AutoencoderKl::<B>::load(&Weights::random(device), VaeConfig::sdxl())
        .expect("SDXL VAE with random weights");
    let [h, w] = stage_latent(options);
    let steps = if options.small { 2 } else { 50 };
    let normal = Distribution::Normal(0.0, 1.0);
    let (image_h, image_w) = ((h * 8) as f32, (w * 8) as f32);
    let conditioning = Conditioning {
        positive: Tensor::random([1, 77, 2048], normal, device),
        positive_pooled: Tensor::random([1, 1280], normal, device),
        negative: Tensor::random([1, 77, 2048], normal, device),
        negative_pooled: Tensor::random([1, 1280], normal, device),
        time_ids: [image_h, image_w, 0.0, 0.0, image_h, image_w],
    };
    let noise = Tensor::<B, 4>::random([1, 4, h, w], normal, device);
    let once = Options {
        iters: 1,
        warmup: 1,
        ..options.clone()
    };
    time_case::<B, _>(
        &once,
        device,
        "sdxl_image",
        &format!("{steps} steps CFG {IMAGE_GUIDANCE} + decode, latent [1,4,{h},{w}]"),
        0.0,
        || {
            let mut scheduler = EulerDiscrete::new(NoiseSchedule::sdxl(), false);
            let latents = denoise(
                &unet,
                &mut scheduler,
                noise.clone(),
                &conditioning,
                steps,
                IMAGE_GUIDANCE,
                &mut |_| ControlFlow::Continue(()),
            )
            .expect("denoise");
            vae.decode_scaled(latents).expect("decode")
        },
    );
}

/// One FLUX.1-dev transformer step at 1152×864 (3888 image tokens, 512 text tokens, batch 1,
/// distilled guidance 3.5), random weights; `--small`: one double and one single block of
/// 2 heads at 128×96 with 16 text tokens. `flux_step_prepared` times it as the sampler runs
/// it, the text, pooled and guidance conditioning and the rotary tables prepared once
/// beforehand, against the same PyTorch step.
fn flux_step<B: Backend>(options: &Options, device: &B::Device) {
    let (config, [h, w], text) = if options.small {
        let small = FluxConfig {
            num_layers: 1,
            num_single_layers: 1,
            num_attention_heads: 2,
            joint_attention_dim: 64,
            pooled_projection_dim: 32,
            ..FluxConfig::flux_dev()
        };
        (small, [16, 12], 16)
    } else {
        (FluxConfig::flux_dev(), [144, 108], 512)
    };
    let model = FluxTransformer2DModel::<B>::load(&Weights::random(device), config.clone())
        .expect("FLUX transformer with random weights");
    let normal = Distribution::Normal(0.0, 1.0);
    let tokens = (h / 2) * (w / 2);
    let input = FluxInput {
        image: Tensor::random([1, tokens, config.in_channels], normal, device),
        image_ids: image_ids(h, w),
        context: Tensor::random([1, text, config.joint_attention_dim], normal, device),
        pooled: Tensor::random([1, config.pooled_projection_dim], normal, device),
        timestep: 0.9,
        guidance: Some(3.5),
    };
    time_case::<B, _>(
        options,
        device,
        "flux_step",
        &format!("[1,{tokens},64] + text {text}"),
        0.0,
        || model.forward(input.clone()).expect("FLUX step"),
    );
    if options.wants("flux_step_prepared") {
        let FluxInput {
            image,
            image_ids,
            context,
            pooled,
            timestep,
            guidance,
        } = input;
        let prepared = model
            .prepare(context, pooled, guidance, &image_ids)
            .expect("FLUX context");
        time_case::<B, _>(
            options,
            device,
            "flux_step_prepared",
            &format!("[1,{tokens},64] + text {text} prepared"),
            0.0,
            || {
                model
                    .forward_prepared(image.clone(), timestep, &prepared)
                    .expect("FLUX step")
            },
        );
    }
}

/// The SDXL UNet cut down to its level `level` (1: 640 channels at half the latent's
/// resolution, 2: 1280 channels at a quarter): the same ResNet blocks, transformers and attention
/// shapes as that level of the full step, plus a mid block and up layers at the level's width.
/// Run in processes of their own before the full step (`run.sh`), they compile and autotune most
/// of its kernels in parallel: CubeCL shares its kernel and autotune caches between processes
/// through files, and reads them when a process starts.
fn sdxl_level(level: usize) -> UNetConfig {
    let full = UNetConfig::sdxl();
    let up = full.up_levels.len() - 1 - level;
    UNetConfig {
        block_out_channels: vec![full.block_out_channels[level]],
        down_levels: vec![full.down_levels[level]],
        up_levels: vec![full.up_levels[up]],
        transformer_layers_per_block: vec![full.transformer_layers_per_block[level]],
        attention_heads: vec![full.attention_heads[level]],
        ..full
    }
}

/// The SDXL UNet with every block, transformer, attention and norm of the real one, but
/// narrow: 32, 64 and 128 channels instead of 320, 640 and 1280 (heads of 32 instead of 64, a
/// 128-wide time embedding). It launches the same operations as the real step; on a small
/// latent ([`OVERHEAD_LATENT`]) they do almost no work, so its time is the step's fixed cost:
/// queueing and launching its kernels.
fn sdxl_narrow() -> UNetConfig {
    let full = UNetConfig::sdxl();
    UNetConfig {
        block_out_channels: full.block_out_channels.iter().map(|c| c / 10).collect(),
        attention_heads: full.attention_heads.iter().map(|h| h / 5).collect(),
        time_embedding_dim: full.time_embedding_dim / 10,
        ..full
    }
}

/// The latent of the overhead case: a 256×192 image.
const OVERHEAD_LATENT: [usize; 2] = [32, 24];

/// The latent of the stages' image: 1152×864 (`--small`: 128×96).
fn stage_latent(options: &Options) -> [usize; 2] {
    if options.small {
        [16, 12]
    } else {
        [144, 108]
    }
}

/// One UNet step with guidance (batch 2, 77 text tokens) of `config` with random weights, for
/// the image whose latent is `latent`, on that latent at `1 / 2^level` of its size. When
/// `{name}_prepared` is wanted too, the same model is also timed as the sampler runs it, the
/// context prepared once beforehand (`forward_prepared`: no key/value projections of the
/// context, no added embedding), against the same PyTorch step.
fn unet_case<B: Backend>(
    options: &Options,
    device: &B::Device,
    name: &str,
    config: UNetConfig,
    latent: [usize; 2],
    level: usize,
) {
    let unet = UNet2DConditionModel::<B>::load(&Weights::random(device), config)
        .expect("UNet with random weights");
    let [h, w] = latent;
    let size = [(h * 8) as f32, (w * 8) as f32];
    let [h, w] = [h >> level, w >> level];
    let normal = Distribution::Normal(0.0, 1.0);
    let sample = Tensor::<B, 4>::random([2, 4, h, w], normal, device);
    let context = Tensor::<B, 3>::random([2, 77, 2048], normal, device);
    let added = TextTimeCondition {
        text_embeds: Tensor::random([2, 1280], normal, device),
        time_ids: vec![[size[0], size[1], 0.0, 0.0, size[0], size[1]]; 2],
    };
    time_case::<B, _>(
        options,
        device,
        name,
        &format!("[2,4,{h},{w}] ctx 77x2048"),
        0.0,
        || {
            unet.forward(sample.clone(), 981.0, context.clone(), Some(&added))
                .expect("UNet step")
        },
    );
    let prepared_name = format!("{name}_prepared");
    if name == "unet_step" && options.wants(&prepared_name) {
        let prepared = unet.prepare(context, Some(&added)).expect("UNet context");
        time_case::<B, _>(
            options,
            device,
            &prepared_name,
            &format!("[2,4,{h},{w}] ctx 77x2048 prepared"),
            0.0,
            || {
                unet.forward_prepared(sample.clone(), 981.0, &prepared)
                    .expect("UNet step")
            },
        );
    }
}

fn run<B: Backend>(options: &Options, device: B::Device) {
    eprintln!("backend {} on {}", options.backend, B::name(&device));
    if is_cuda::<B>(&device) {
        set_cuda_attention(options.attention);
        set_cuda_convolution(options.convolution);
        set_cuda_library_calls(options.calls);
        eprintln!(
            "attention: {:?}; convolution: {:?}; library calls: {:?}",
            options.attention, options.convolution, options.calls
        );
        for library in NVIDIA_LIBRARIES {
            match use_library(library, !options.burn_kernels) {
                Ok(()) if options.burn_kernels => {
                    eprintln!("{}: off (--burn-kernels)", library.name())
                }
                Ok(()) => eprintln!("{}: on", library.name()),
                Err(e) => eprintln!("{}: off ({e})", library.name()),
            }
        }
    }
    kernels::<B>(options, &device);
    stages::<B>(options, &device);
    if is_cuda::<B>(&device) {
        for library in NVIDIA_LIBRARIES {
            eprintln!("{}: {:?}", library.name(), library_stats(library));
        }
    }
}

fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("gpu bench: {message}");
            std::process::exit(2);
        }
    };
    if options.backend.starts_with("cuda") {
        // Before the first CUDA tensor: the pools and the layout are fixed when the device
        // starts.
        if let Err(e) = set_cuda_memory_pools(options.memory) {
            eprintln!("gpu bench: --memory: {e}");
            std::process::exit(2);
        }
        if let Err(e) = set_cuda_tensor_layout(options.layout) {
            eprintln!("gpu bench: --layout: {e}");
            std::process::exit(2);
        }
        eprintln!(
            "memory pools: {:?}; tensor layout: {:?}",
            options.memory, options.layout
        );
    }
    match options.backend.as_str() {
        #[cfg(feature = "cuda")]
        "cuda" => run::<faceclip::backend::Cuda>(&options, Default::default()),
        #[cfg(feature = "cuda")]
        "cuda-bf16" => run::<faceclip::backend::CudaBf16>(&options, Default::default()),
        #[cfg(feature = "wgpu")]
        "wgpu" => run::<faceclip::backend::Wgpu>(&options, Default::default()),
        #[cfg(feature = "ndarray")]
        "ndarray" => run::<faceclip::backend::NdArray>(&options, Default::default()),
        other => {
            eprintln!("gpu bench: backend {other} is unknown or not compiled in");
            std::process::exit(2);
        }
    }
}
