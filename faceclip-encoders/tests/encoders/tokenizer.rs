//! The CLIP tokenizer against `open_clip.tokenize` and `transformers.CLIPTokenizer`
//! (fixture written by `tools/parity/make_fixtures.py`).

use faceclip_encoders::tokenizer::{ClipTokenizer, EOT, SOT};

fn fixture() -> serde_json::Value {
    let path = crate::fixture("tokenizer.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}

fn check(tokenizer: &ClipTokenizer, cases: &serde_json::Value) -> usize {
    let mut checked = 0;
    for case in cases.as_array().expect("cases") {
        let prompt = case["prompt"].as_str().expect("prompt");
        let expected: Vec<u32> = case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let ids = tokenizer.tokenize(prompt).expect("tokenize");
        assert_eq!(ids, expected, "prompt {prompt:?}");
        checked += 1;
    }
    checked
}

#[test]
fn matches_open_clip_tokenize() {
    let n = check(&ClipTokenizer::openclip().unwrap(), &fixture()["openclip"]);
    assert!(n >= 10, "only {n} cases");
}

#[test]
fn matches_hugging_face_clip_tokenizer() {
    let n = check(&ClipTokenizer::hf().unwrap(), &fixture()["hf"]);
    assert!(n >= 10, "only {n} cases");
}

#[test]
fn spec_section_13_prompt() {
    let ids = ClipTokenizer::openclip()
        .unwrap()
        .tokenize("Photo of a id person. A woman wearing a blue denim shirt and khaki pants, on a rocky desert plateau.")
        .unwrap();
    let expected = [
        49406, 1125, 539, 320, 1014, 2533, 269, 320, 2308, 3309, 320, 1746, 13606, 2523, 537,
        41646, 5003, 267, 525, 320, 9648, 7301, 29301, 269, 49407,
    ];
    assert_eq!(&ids[..25], &expected);
    assert!(ids[25..].iter().all(|&id| id == 0));
    assert_eq!(ids.len(), 77);
}

#[test]
fn empty_and_overlong_prompts() {
    let tok = ClipTokenizer::openclip().unwrap();
    let empty = tok.tokenize("").unwrap();
    assert_eq!(&empty[..2], &[SOT, EOT]);
    assert!(empty[2..].iter().all(|&id| id == 0));
    let whitespace = tok.tokenize(" \t\n ").unwrap();
    assert_eq!(whitespace, empty);
    let long = tok.tokenize(&"tree ".repeat(500)).unwrap();
    assert_eq!(long.len(), 77);
    assert_eq!(long[0], SOT);
    assert_eq!(long[76], EOT);
    assert!(long[1..76].iter().all(|&id| id != 0 && id != EOT));
}

#[test]
fn batch_tensor_has_context_shape() {
    type B = faceclip_core::backend::NdArray;
    let tok = ClipTokenizer::openclip().unwrap();
    let ids = tok
        .tokenize_batch::<B>(&["a cat", ""], &Default::default())
        .unwrap();
    assert_eq!(ids.dims(), [2, 77]);
}
