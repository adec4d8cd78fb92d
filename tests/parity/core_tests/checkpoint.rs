//! Checkpoint reading against real `torch.save` archives (written by
//! `tools/parity/make_fixtures.py`) and synthetic safetensors files, including damaged files.

use std::path::PathBuf;

use super::fixture;
use burn::tensor::Tensor;
use faceclip_core::backend::NdArray;
use faceclip_core::parity::{relative_l2, to_vec};
use faceclip_core::weights::{
    Checkpoint, DType, Format, IgnoreRules, KeyRemap, LoadOptions, Weights,
};
use faceclip_core::LoadError;

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("checkpoint-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn expected(key: &str) -> Vec<f32> {
    Checkpoint::open(fixture("layouts_expected.safetensors"))
        .unwrap()
        .read_f32(key)
        .unwrap()
        .0
}

#[test]
fn reads_every_layout_of_a_torch_archive() {
    let ckpt = Checkpoint::open(fixture("layouts.pt")).unwrap();
    assert_eq!(ckpt.format(), Format::PyTorch);
    let base = expected("base");
    let read = |key: &str| ckpt.read_f32(key).unwrap();

    assert_eq!(read("model.layer.weight_f32"), (base.clone(), vec![4, 6]));
    assert_eq!(read("model.layer.weight_f16").0, expected("base_f16"));
    assert_eq!(read("model.layer.weight_bf16").0, expected("base_bf16"));
    assert_eq!(read("model.layer.weight_f64").0, expected("base_f64"));
    assert_eq!(read("model.param").0, base);
    assert_eq!(read("model.scalar"), (vec![2.5], vec![]));
    assert_eq!(read("nested.inner.value").0, base[..6].to_vec());

    let transposed: Vec<f32> = (0..6)
        .flat_map(|c| (0..4).map(move |r| (r, c)))
        .map(|(r, c)| base[r * 6 + c])
        .collect();
    assert_eq!(read("model.layer.transposed"), (transposed, vec![6, 4]));
    let slice: Vec<f32> = (1..3)
        .flat_map(|r| (2..6).map(move |c| (r, c)))
        .map(|(r, c)| base[r * 6 + c])
        .collect();
    assert_eq!(read("model.layer.slice"), (slice, vec![2, 4]));

    assert_eq!(ckpt.read_i64("model.counter").unwrap(), (vec![7], vec![]));
    assert!(
        ckpt.info("epoch").is_none(),
        "non-tensor entries are skipped"
    );
}

#[test]
fn integer_tensor_as_weight_is_an_unsupported_dtype() {
    let ckpt = Checkpoint::open(fixture("layouts.pt")).unwrap();
    match ckpt.read_f32("model.counter") {
        Err(LoadError::UnsupportedDtype { key, dtype, .. }) => {
            assert_eq!(key, "model.counter");
            assert_eq!(dtype, DType::I64);
        }
        other => panic!("expected UnsupportedDtype, got {other:?}"),
    }
}

#[test]
fn remap_strips_model_prefix_and_detects_collisions() {
    let ckpt = Checkpoint::open(fixture("layouts.pt"))
        .unwrap()
        .remap(&KeyRemap::faceclip())
        .unwrap();
    assert!(ckpt.info("layer.weight_f32").is_some());
    assert!(ckpt.info("model.layer.weight_f32").is_none());
    let collide = KeyRemap::new()
        .strip_substring("_f32")
        .strip_substring("_f16");
    let err = Checkpoint::open(fixture("layouts.pt"))
        .unwrap()
        .remap(&collide)
        .unwrap_err();
    assert!(matches!(err, LoadError::KeyCollision { .. }), "{err}");
}

#[test]
fn truncated_torch_archive_is_a_typed_error() {
    let bytes = std::fs::read(fixture("layouts.pt")).unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 30] {
        let path = scratch(&format!("truncated-{cut}.pt"), &bytes[..cut]);
        let err = Checkpoint::open(&path).unwrap_err();
        assert!(matches!(err, LoadError::Corrupt { .. }), "cut {cut}: {err}");
        assert!(
            err.to_string().contains("truncated-"),
            "error names the file: {err}"
        );
    }
}

#[test]
fn damaged_pickle_is_a_typed_error() {
    let mut bytes = std::fs::read(fixture("layouts.pt")).unwrap();
    // Overwrite the pickle's opening bytes inside the (stored, uncompressed) record.
    let at = bytes
        .windows(3)
        .position(|w| w == [0x80, 0x02, b'}'])
        .expect("pickle header");
    bytes[at + 2] = 0xff;
    let err = Checkpoint::open(scratch("damaged.pt", &bytes)).unwrap_err();
    assert!(
        err.to_string().contains("corrupt") || matches!(err, LoadError::Corrupt { .. }),
        "{err}"
    );
}

fn safetensors_bytes(tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.to_string(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn safetensors_casts_half_types() {
    let values = [0.5f32, -1.25, 3.0, 0.0];
    let bf16: Vec<u8> = values
        .iter()
        .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
        .collect();
    let f16: Vec<u8> = values
        .iter()
        .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
        .collect();
    let bytes = safetensors_bytes(&[
        ("a", safetensors::Dtype::BF16, vec![2, 2], bf16),
        ("b", safetensors::Dtype::F16, vec![4], f16),
        ("c", safetensors::Dtype::F32, vec![1, 4], f32_bytes(&values)),
    ]);
    let ckpt = Checkpoint::open(scratch("casts.safetensors", &bytes)).unwrap();
    assert_eq!(ckpt.format(), Format::Safetensors);
    for key in ["a", "b", "c"] {
        assert_eq!(ckpt.read_f32(key).unwrap().0, values.to_vec(), "{key}");
    }
}

#[test]
fn truncated_or_garbage_safetensors_is_a_typed_error() {
    let bytes = safetensors_bytes(&[(
        "w",
        safetensors::Dtype::F32,
        vec![8, 8],
        f32_bytes(&[1.0; 64]),
    )]);
    for (name, data) in [
        ("empty.safetensors", Vec::new()),
        ("short.safetensors", bytes[..5].to_vec()),
        ("cut-header.safetensors", bytes[..20].to_vec()),
        ("cut-data.safetensors", bytes[..bytes.len() - 4].to_vec()),
        (
            "garbage.safetensors",
            b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!".to_vec(),
        ),
    ] {
        let err = Checkpoint::open(scratch(name, &data)).unwrap_err();
        assert!(matches!(err, LoadError::Corrupt { .. }), "{name}: {err}");
        assert!(
            err.to_string().contains(name),
            "error names the file: {err}"
        );
    }
    let err = Checkpoint::open("/nonexistent/weights.safetensors").unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err}");
}

#[test]
fn unsupported_dtype_in_safetensors() {
    let bytes = safetensors_bytes(&[(
        "ids",
        safetensors::Dtype::I32,
        vec![2],
        vec![1, 0, 0, 0, 2, 0, 0, 0],
    )]);
    let path = scratch("ints.safetensors", &bytes);
    let vb = crate::open_weights::<NdArray>(&path, &Default::default());
    let err = vb.tensor::<1>("ids", [2]).unwrap_err();
    assert!(matches!(err, LoadError::UnsupportedDtype { .. }), "{err}");
    assert!(
        err.to_string().contains("ids") && err.to_string().contains("i32"),
        "{err}"
    );
}

fn weights(strict: bool) -> Weights<NdArray> {
    let bytes = safetensors_bytes(&[
        (
            "block.weight",
            safetensors::Dtype::F32,
            vec![2, 3],
            f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ),
        (
            "block.logit_scale",
            safetensors::Dtype::F32,
            vec![],
            f32_bytes(&[1.0]),
        ),
        (
            "block.extra",
            safetensors::Dtype::F32,
            vec![1],
            f32_bytes(&[1.0]),
        ),
        (
            "other.weight",
            safetensors::Dtype::F32,
            vec![1],
            f32_bytes(&[1.0]),
        ),
    ]);
    let path = scratch(&format!("loader-{strict}.safetensors"), &bytes);
    open_scratch(path, strict, IgnoreRules::faceclip())
}

/// Weights from a scratch checkpoint, keys as stored, on ndarray.
fn open_scratch(path: PathBuf, strict: bool, ignore: IgnoreRules) -> Weights<NdArray> {
    let options = LoadOptions { strict, ignore };
    Weights::open(path, &KeyRemap::new(), options, &Default::default()).unwrap()
}

#[test]
fn strict_loading_names_file_key_and_shapes() {
    let vb = weights(true).pp("block");
    match vb.tensor::<2>("weight", [3, 2]) {
        Err(LoadError::ShapeMismatch {
            file,
            key,
            expected,
            found,
        }) => {
            assert!(file.to_string_lossy().ends_with("loader-true.safetensors"));
            assert_eq!(
                (key.as_str(), expected, found),
                ("block.weight", vec![3, 2], vec![2, 3])
            );
        }
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
    match vb.tensor::<1>("bias", [3]) {
        Err(LoadError::MissingKey { key, expected, .. }) => {
            assert_eq!((key.as_str(), expected), ("block.bias", vec![3]))
        }
        other => panic!("expected MissingKey, got {other:?}"),
    }
    let w: Tensor<NdArray, 2> = vb.tensor("weight", [2, 3]).unwrap();
    assert_eq!(to_vec(w), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    match vb.finish() {
        Err(LoadError::UnexpectedKeys { keys, prefix, .. }) => {
            assert_eq!(prefix, "block");
            assert_eq!(
                keys,
                vec!["block.extra".to_string()],
                "logit_scale is ignorable, other.* is out of scope"
            );
        }
        other => panic!("expected UnexpectedKeys, got {other:?}"),
    }
}

#[test]
fn partial_loading_reports_missing_keys() {
    let vb = weights(false).pp("block");
    let linear = faceclip_core::nn::load_linear(&vb, 3, 2, true).unwrap();
    // weight [2, 3] in PyTorch layout becomes Burn's [3, 2].
    let w = to_vec(linear.weight.val());
    assert!(
        relative_l2(&w, &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]) == 0.0,
        "{w:?}"
    );
    let report = vb.finish().unwrap();
    assert_eq!(report.applied, vec!["block.weight"]);
    assert_eq!(report.missing, vec!["block.bias"]);
    assert_eq!(report.ignored, vec!["block.logit_scale"]);
    assert_eq!(report.unexpected, vec!["block.extra"]);
}

/// A checkpoint with an attention's q and k projections stored apart (PyTorch layout) and no v.
fn split_projections(strict: bool) -> Weights<NdArray> {
    let f32s = |values: &[f32]| (safetensors::Dtype::F32, f32_bytes(values));
    let (dtype, q) = f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let (_, k) = f32s(&[7.0, 8.0, 9.0, 10.0, 11.0, 12.0]);
    let (_, q_bias) = f32s(&[0.1, 0.2]);
    let (_, k_bias) = f32s(&[0.3, 0.4]);
    let bytes = safetensors_bytes(&[
        ("attn.q_proj.weight", dtype, vec![2, 3], q),
        ("attn.k_proj.weight", dtype, vec![2, 3], k),
        ("attn.q_proj.bias", dtype, vec![2], q_bias),
        ("attn.k_proj.bias", dtype, vec![2], k_bias),
    ]);
    let path = scratch(&format!("split-{strict}.safetensors"), &bytes);
    open_scratch(path, strict, IgnoreRules::none())
}

#[test]
fn packed_projection_joins_its_parts_in_order() {
    let vb = split_projections(true).pp("attn");
    let weight = vb
        .linear_weights_concat(&["q_proj.weight", "k_proj.weight"], 3, &[2, 2])
        .unwrap();
    assert_eq!(weight.dims(), [3, 4]);
    // Row i holds input i's weight in q's outputs, then in k's.
    assert_eq!(
        to_vec(weight),
        vec![1.0, 4.0, 7.0, 10.0, 2.0, 5.0, 8.0, 11.0, 3.0, 6.0, 9.0, 12.0]
    );
    let bias = vb
        .tensors_concat(&["q_proj.bias", "k_proj.bias"], &[2, 2])
        .unwrap();
    assert_eq!(to_vec(bias), vec![0.1, 0.2, 0.3, 0.4]);
    assert_eq!(vb.finish().unwrap().applied.len(), 4);

    match vb.linear_weights_concat(&["q_proj.weight", "v_proj.weight"], 3, &[2, 2]) {
        Err(LoadError::MissingKey { key, .. }) => assert_eq!(key, "attn.v_proj.weight"),
        other => panic!("expected MissingKey, got {other:?}"),
    }
    match vb.tensors_concat(&["q_proj.bias", "k_proj.bias"], &[2]) {
        Err(LoadError::Config(message)) => {
            assert!(
                message.contains("2 tensors") && message.contains("1 sizes"),
                "{message}"
            )
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
    match vb.tensors_concat(&[], &[]) {
        Err(LoadError::Config(message)) => assert!(message.contains("attn"), "{message}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[test]
fn packed_projection_with_a_missing_part_is_random_there_when_not_strict() {
    let vb = split_projections(false).pp("attn");
    let weight = vb
        .linear_weights_concat(&["q_proj.weight", "v_proj.weight"], 3, &[2, 2])
        .unwrap();
    assert_eq!(weight.dims(), [3, 4]);
    let values = to_vec(weight);
    let bound = 1.0 / 3f32.sqrt();
    for (row, q) in values.chunks(4).zip([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]) {
        assert_eq!(row[..2], q, "{values:?}");
        assert!(row[2..].iter().all(|v| v.abs() <= bound), "{values:?}");
    }
    assert_eq!(vb.report().missing, vec!["attn.v_proj.weight"]);
}
