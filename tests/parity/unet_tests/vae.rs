//! `AutoencoderKl` against diffusers 0.33.1 on random weights with diffusers' key names.

use super::fixture;
use burn::tensor::{backend::Backend, Tensor};
use faceclip_core::backend::NdArray;
use faceclip_core::parity::assert_close;
use faceclip_core::weights::{Checkpoint, Weights};
use faceclip_core::LoadError;
use faceclip_unet::{AutoencoderKl, VaeConfig, VaeTiling};

const TOLERANCE: f64 = 1e-4;

fn load<B: Backend>(device: &B::Device) -> AutoencoderKl<B> {
    let config =
        VaeConfig::from_json(&std::fs::read_to_string(fixture("vae_config.json")).unwrap())
            .unwrap();
    assert_eq!(config.block_out_channels, vec![16, 32]);
    assert!((config.scaling_factor - 0.13025).abs() < 1e-12);
    let vb = crate::open_weights::<B>(&fixture("vae_weights.safetensors"), device);
    let vae = AutoencoderKl::load(&vb, config).unwrap();
    let report = vb.finish().expect("every tensor of the file is used");
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report}"
    );
    vae
}

fn input<B: Backend>(io: &Checkpoint, key: &str, device: &B::Device) -> Tensor<B, 4> {
    super::tensor(io, key, device)
}

fn check_vae<B: Backend>(device: &B::Device) {
    let vae = load::<B>(device);
    let io = Checkpoint::open(fixture("vae_io.safetensors")).unwrap();
    let mean = vae.encode(input(&io, "image", device)).unwrap();
    assert_close("VAE encode", mean, &io, "encoded_mean", TOLERANCE);
    let images = vae.decode(input(&io, "latents", device)).unwrap();
    assert_close("VAE decode", images, &io, "decoded", TOLERANCE);
    // Scaled latents (what the sampler produces) decode to the same images.
    let scaled = input::<B>(&io, "latents", device) * vae.scaling_factor() as f32;
    assert_close(
        "VAE decode_scaled",
        vae.decode_scaled(scaled).unwrap(),
        &io,
        "decoded",
        TOLERANCE,
    );
}

#[test]
fn vae_matches_diffusers_ndarray() {
    check_vae::<NdArray>(&Default::default());
}

#[cfg(feature = "wgpu")]
#[test]
fn vae_matches_diffusers_wgpu() {
    check_vae::<faceclip_core::backend::Wgpu>(&Default::default());
}

#[cfg(feature = "cuda")]
#[test]
fn vae_matches_diffusers_cuda() {
    check_vae::<faceclip_core::backend::Cuda>(&Default::default());
}

#[test]
fn bad_configs_weights_and_inputs_are_typed_errors() {
    let device = Default::default();
    assert!(matches!(
        VaeConfig::from_json("{not json"),
        Err(LoadError::Config(_))
    ));
    let err = VaeConfig::from_json(r#"{"down_block_types": ["DownBlock2D"]}"#).unwrap_err();
    assert!(err.to_string().contains("DownBlock2D"), "{err}");
    let err = VaeConfig::from_json(r#"{"block_out_channels": [30, 64], "norm_num_groups": 32}"#)
        .unwrap_err();
    assert!(err.to_string().contains("norm_num_groups"), "{err}");
    // The SDXL preset against the tiny file: the first tensor has the wrong shape.
    let vb = crate::open_weights::<NdArray>(&fixture("vae_weights.safetensors"), &device);
    let err = AutoencoderKl::load(&vb, VaeConfig::sdxl()).unwrap_err();
    assert!(matches!(err, LoadError::ShapeMismatch { .. }), "{err}");

    let vae = load::<NdArray>(&device);
    let odd = Tensor::<NdArray, 4>::zeros([1, 3, 33, 32], &device);
    assert!(vae.encode(odd).is_err());
    let grey = Tensor::<NdArray, 4>::zeros([1, 1, 32, 32], &device);
    assert!(vae.encode(grey).is_err());
    let wrong = Tensor::<NdArray, 4>::zeros([1, 3, 16, 16], &device);
    assert!(vae.decode(wrong).is_err());
}

#[test]
fn sdxl_preset_has_the_released_parameter_count() {
    use burn::module::Module;
    // diffusers' AutoencoderKL with SDXL's config.json has 83,653,863 parameters.
    let vae =
        AutoencoderKl::<NdArray>::load(&Weights::random(&Default::default()), VaeConfig::sdxl())
            .unwrap();
    assert_eq!(vae.num_params(), 83_653_863);
}

#[test]
fn tiled_decode_matches_diffusers_tiling() {
    // diffusers' enable_tiling() with 8×8 latent tiles, overlap factor 0.25, on 20×14 latents:
    // 4 × 3 overlapping tiles, blended as diffusers does (in place, row by row).
    let device = Default::default();
    let vae = load::<NdArray>(&device);
    let io = Checkpoint::open(fixture("vae_tiled_io.safetensors")).unwrap();
    let tiling = VaeTiling {
        tile: 8,
        overlap: 2,
    };
    let images = vae
        .decode_tiled(input(&io, "latents", &device), tiling)
        .unwrap();
    assert_close("VAE tiled decode", images, &io, "decoded", TOLERANCE);
    // Latents that fit in one tile decode exactly as without tiling.
    let small = input::<NdArray>(&io, "latents", &device)
        .narrow(2, 0, 8)
        .narrow(3, 0, 8);
    let direct = faceclip_core::parity::to_vec(vae.decode(small.clone()).unwrap());
    let tiled = faceclip_core::parity::to_vec(vae.decode_tiled(small, tiling).unwrap());
    assert_eq!(direct, tiled);
    for bad in [
        VaeTiling {
            tile: 1,
            overlap: 0,
        },
        VaeTiling {
            tile: 8,
            overlap: 8,
        },
    ] {
        assert!(vae
            .decode_tiled(input(&io, "latents", &device), bad)
            .is_err());
    }
}

#[test]
fn shift_factor_is_undone_before_decoding_as_flux_needs() {
    let device = Default::default();
    let mut config =
        VaeConfig::from_json(&std::fs::read_to_string(fixture("vae_config.json")).unwrap())
            .unwrap();
    assert_eq!(config.shift_factor, 0.0);
    config.shift_factor = 0.1159;
    let vb = crate::open_weights::<NdArray>(&fixture("vae_weights.safetensors"), &device);
    let vae = AutoencoderKl::load(&vb, config).unwrap();
    let io = Checkpoint::open(fixture("vae_io.safetensors")).unwrap();
    // diffusers' FluxPipeline: image = decode(latents / scaling_factor + shift_factor).
    let sampler_latents = (input::<NdArray>(&io, "latents", &device) - 0.1159) * 0.13025;
    assert_close(
        "VAE decode_scaled with shift",
        vae.decode_scaled(sampler_latents).unwrap(),
        &io,
        "decoded",
        TOLERANCE,
    );
    let flux = VaeConfig::flux();
    assert_eq!((flux.latent_channels, flux.use_quant_conv), (16, false));
    assert!(flux.validate().is_ok());
    let bad = r#"{"shift_factor": "a lot"}"#;
    assert!(VaeConfig::from_json(bad)
        .unwrap_err()
        .to_string()
        .contains("shift_factor"));
}
