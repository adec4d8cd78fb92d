//! The schedulers against diffusers 0.33 (`EulerDiscreteScheduler`, `DDIMScheduler`,
//! `DPMSolverMultistepScheduler` as DPM++ 2M) with the SDXL configuration and spacing/Karras
//! variants, and `FlowMatchEulerDiscreteScheduler` with FLUX.1-dev's; fixture from
//! `tools/parity/make_scheduler_fixtures.py`. A fixed stand-in model drives whole loops.

use super::fixture;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::relative_l2;
use faceclip_core::parity::to_vec;
use faceclip_core::schedule::{
    gaussian_noise, Ddim, DpmSolverMultistep, EulerDiscrete, FlowMatchEuler, FlowShift,
    NoiseSchedule, Scheduler, TimestepSpacing,
};
use faceclip_core::weights::Checkpoint;

const CASES: [&str; 21] = [
    "euler_leading_1",
    "euler_leading_4",
    "euler_leading_25",
    "euler_leading_50",
    "euler_trailing_10",
    "euler_linspace_10",
    "euler_karras_20",
    "ddim_leading_1",
    "ddim_leading_10",
    "ddim_leading_50",
    "ddim_trailing_10",
    "dpm_leading_1",
    "dpm_leading_10",
    "dpm_leading_25",
    "dpm_trailing_20",
    "dpm_linspace_20",
    "dpm_karras_20",
    "flow_3888_50",
    "flow_256_4",
    "flow_4096_1",
    "flow_fixed3_10",
];

fn schedule(name: &str) -> NoiseSchedule {
    let spacing = if name.contains("trailing") {
        TimestepSpacing::Trailing
    } else if name.contains("linspace") {
        TimestepSpacing::Linspace
    } else {
        TimestepSpacing::Leading
    };
    NoiseSchedule {
        spacing,
        ..NoiseSchedule::sdxl()
    }
}

fn tensor<B: Backend>(io: &Checkpoint, key: &str, device: &B::Device) -> Tensor<B, 4> {
    faceclip_core::parity::reference_tensor(io, key, device).unwrap()
}

fn close(what: &str, actual: &[f32], expected: &[f32], tolerance: f64) {
    let err = relative_l2(actual, expected);
    println!("{what}: relative L2 error {err:.3e}");
    assert!(
        err <= tolerance,
        "{what}: relative L2 error {err:.3e} > {tolerance:.0e}"
    );
}

/// Runs the stand-in loop `eps = 0.5 cos(t/300) x_in + 0.3 n` and checks every stage.
fn check_loop<B: Backend, S: Scheduler<B>>(
    name: &str,
    mut s: S,
    io: &Checkpoint,
    device: &B::Device,
) {
    let steps: usize = name.rsplit('_').next().unwrap().parse().unwrap();
    s.set_timesteps(steps).unwrap();
    let (t_ref, _) = io
        .read_f32(&format!("{name}.timesteps"))
        .unwrap_or_else(|_| {
            let (v, shape) = io.read_i64(&format!("{name}.timesteps")).unwrap();
            (v.iter().map(|x| *x as f32).collect(), shape)
        });
    let t_ours: Vec<f32> = s.timesteps().iter().map(|t| *t as f32).collect();
    assert_eq!(t_ours.len(), t_ref.len(), "{name}: {t_ours:?} vs {t_ref:?}");
    for (a, b) in t_ours.iter().zip(&t_ref) {
        assert!(
            (a - b).abs() < 1e-3,
            "{name}: timesteps {t_ours:?} vs {t_ref:?}"
        );
    }
    let (sigma, _) = io.read_f32(&format!("{name}.init_noise_sigma")).unwrap();
    assert!(
        (s.init_noise_sigma() as f32 - sigma[0]).abs() <= 1e-5 * sigma[0],
        "{name}: init sigma"
    );

    let noise = tensor::<B>(io, "model_noise", device);
    let mut x = tensor::<B>(io, "init", device) * s.init_noise_sigma() as f32;
    let timesteps = s.timesteps().to_vec();
    for (i, &t) in timesteps.iter().enumerate() {
        let input = s.scale_model_input(x.clone(), i).unwrap();
        let eps = input.clone() * (0.5 * (t as f32 / 300.0).cos()) + noise.clone() * 0.3;
        x = s.step(eps, i, x).unwrap();
        if i == 0 {
            let (v, _) = io.read_f32(&format!("{name}.first_input")).unwrap();
            close(&format!("{name} first input"), &to_vec(input), &v, 1e-5);
            let (v, _) = io.read_f32(&format!("{name}.first_step")).unwrap();
            close(&format!("{name} first step"), &to_vec(x.clone()), &v, 1e-5);
        }
    }
    let (v, _) = io.read_f32(&format!("{name}.final")).unwrap();
    close(&format!("{name} final"), &to_vec(x), &v, 1e-4);
}

fn check_all<B: Backend>(device: &B::Device) {
    let io = Checkpoint::open(fixture("schedulers.safetensors")).unwrap();
    let sigmas = |name: &str, ours: &[f32], steps: usize| {
        let (expected, _) = io.read_f32(&format!("{name}.sigmas")).unwrap();
        assert_eq!(ours.len(), steps + 1, "{name}: sigma count");
        close(&format!("{name} sigmas"), ours, &expected, 1e-6);
    };
    for name in CASES {
        let steps: usize = name.rsplit('_').next().unwrap().parse().unwrap();
        let karras = name.contains("karras");
        if name.starts_with("euler") {
            let mut probe = EulerDiscrete::new(schedule(name), karras);
            probe.set_timesteps(steps).unwrap();
            sigmas(name, probe.sigmas(), steps);
            check_loop::<B, _>(
                name,
                EulerDiscrete::new(schedule(name), karras),
                &io,
                device,
            );
        } else if name.starts_with("flow") {
            let flow = || match name.split('_').nth(1).unwrap() {
                "fixed3" => FlowMatchEuler::new(FlowShift::Fixed(3.0), 0),
                seq => FlowMatchEuler::flux(seq.parse().unwrap()),
            };
            let mut probe = flow();
            probe.set_timesteps(steps).unwrap();
            sigmas(name, probe.sigmas(), steps);
            check_loop::<B, _>(name, flow(), &io, device);
        } else if name.starts_with("dpm") {
            let mut probe = DpmSolverMultistep::<B>::new(schedule(name), karras);
            probe.set_timesteps(steps).unwrap();
            sigmas(name, probe.sigmas(), steps);
            check_loop::<B, _>(name, probe, &io, device);
        } else {
            check_loop::<B, _>(name, Ddim::new(schedule(name), false), &io, device);
        }
    }
}

#[test]
fn schedulers_match_diffusers_ndarray() {
    check_all::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn schedulers_match_diffusers_wgpu() {
    check_all::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn schedulers_match_diffusers_cuda() {
    check_all::<faceclip_core::backend::Cuda>(&Default::default());
}

#[test]
fn bad_step_counts_and_indices_are_errors() {
    let mut s = EulerDiscrete::new(NoiseSchedule::sdxl(), false);
    assert!(s.set_timesteps(0).is_err());
    assert!(s.set_timesteps(1001).is_err());
    let x = Tensor::<NdArray, 4>::zeros([1, 4, 2, 2], &Default::default());
    // Not prepared yet: every index is out of range.
    assert!(s.step(x.clone(), 0, x.clone()).is_err());
    s.set_timesteps(5).unwrap();
    assert!(s.scale_model_input(x.clone(), 5).is_err());
    let mut d = Ddim::new(NoiseSchedule::sdxl(), false);
    d.set_timesteps(3).unwrap();
    assert!(d.step(x.clone(), 3, x.clone()).is_err());
    // DPM++ 2M keeps state: steps must run in order.
    let mut dpm = DpmSolverMultistep::<NdArray>::new(NoiseSchedule::sdxl(), false);
    dpm.set_timesteps(4).unwrap();
    assert!(dpm.step(x.clone(), 1, x.clone()).is_err());
    assert!(dpm.step(x.clone(), 0, x.clone()).is_ok());
    assert!(dpm.step(x.clone(), 0, x.clone()).is_err());
    let mut flow = FlowMatchEuler::flux(3888);
    assert!(flow.set_timesteps(0).is_err());
    flow.set_timesteps(2).unwrap();
    assert!(Scheduler::<NdArray>::step(&mut flow, x.clone(), 2, x).is_err());
}

#[test]
fn flux_shift_at_1152_by_864_is_the_reference_mu() {
    // Spec §7.3: mu = 0.5 + (3888 − 256)·0.65/3840 ≈ 1.1148.
    let mu = FlowMatchEuler::flux(3888).mu().unwrap();
    assert!((mu - (0.5 + 3632.0 * 0.65 / 3840.0)).abs() < 1e-12, "{mu}");
    assert_eq!(FlowMatchEuler::new(FlowShift::Fixed(3.0), 3888).mu(), None);
}

#[test]
fn seeded_noise_is_standard_normal_and_reproducible() {
    let device = Default::default();
    let a = to_vec(gaussian_noise::<NdArray, 4>(
        453563,
        [1, 4, 64, 64],
        &device,
    ));
    assert_eq!(
        a,
        to_vec(gaussian_noise::<NdArray, 4>(
            453563,
            [1, 4, 64, 64],
            &device
        ))
    );
    assert_ne!(
        a,
        to_vec(gaussian_noise::<NdArray, 4>(1, [1, 4, 64, 64], &device))
    );
    let mean = a.iter().map(|v| *v as f64).sum::<f64>() / a.len() as f64;
    let var = a.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
    assert!(
        mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
        "mean {mean}, var {var}"
    );
}
