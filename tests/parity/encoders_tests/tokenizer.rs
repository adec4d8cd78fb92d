//! The CLIP tokenizer against `open_clip.tokenize` and `transformers.CLIPTokenizer`
//! (fixture written by `tools/parity/make_fixtures.py`).

use faceclip_encoders::tokenizer::{ClipTokenizer, EOT, SOT};

fn fixture() -> serde_json::Value {
    let path = super::fixture("tokenizer.json");
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

/// The T5 tokenizer against `transformers.T5TokenizerFast(tokenizer_file=…)` called as FLUX
/// calls its `tokenizer_2` (fixture written by `tools/parity/make_facet5_fixtures.py`).
mod t5 {
    use faceclip_encoders::{T5Tokenizer, TokenizerError};

    fn fixture() -> serde_json::Value {
        let path = super::super::fixture("t5_tokenizer_ids.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
    }

    fn ids(case: &serde_json::Value) -> Vec<u32> {
        case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect()
    }

    #[test]
    fn matches_transformers_t5_tokenizer_fast() {
        let tokenizer = T5Tokenizer::tiny().unwrap();
        assert_eq!((tokenizer.max_length(), tokenizer.pad_id()), (512, 0));
        let fixture = fixture();
        let cases = fixture["cases"].as_array().unwrap();
        for case in cases.iter().chain([&fixture["negative"]]) {
            let prompt = case["prompt"].as_str().unwrap();
            assert_eq!(tokenizer.tokenize(prompt).unwrap(), ids(case), "{prompt:?}");
        }
        assert!(cases.len() >= 7);
        // The same file read from disk.
        let path = format!(
            "{}/faceclip-encoders/assets/t5_tiny_tokenizer.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let from_file = T5Tokenizer::from_file(path).unwrap();
        assert_eq!(
            from_file.tokenize("a photo").unwrap(),
            tokenizer.tokenize("a photo").unwrap()
        );
    }

    #[test]
    fn over_long_prompt_is_a_typed_error() {
        let fixture = fixture();
        let prompt = fixture["too_long"]["prompt"].as_str().unwrap();
        let tokens = fixture["too_long"]["tokens"].as_u64().unwrap() as usize;
        let err = T5Tokenizer::tiny().unwrap().tokenize(prompt).unwrap_err();
        assert!(
            matches!(err, TokenizerError::TooLong { tokens: t, limit: 512 } if t == tokens),
            "{err}"
        );
        assert!(err.to_string().contains("512"), "{err}");
        // Exactly at the limit is fine with a shorter table.
        let short = T5Tokenizer::tiny().unwrap().with_max_length(3);
        assert_eq!(short.encode("a b").unwrap().len(), 3);
        assert!(short.tokenize("a b").is_ok());
        assert!(short.tokenize("a b c").is_err());
    }

    #[test]
    fn unreadable_tokenizer_files_are_typed_errors() {
        let err = T5Tokenizer::from_file("/nonexistent/tokenizer.json").unwrap_err();
        assert!(
            matches!(&err, TokenizerError::File { file, .. } if file.contains("nonexistent")),
            "{err}"
        );
        let err = T5Tokenizer::from_bytes(b"{ not json", "broken.json").unwrap_err();
        assert!(err.to_string().contains("broken.json"), "{err}");
        // A valid tokenizer without T5's specials.
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
            "normalizer":null,"pre_tokenizer":null,"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"a":0,"[UNK]":1},"unk_token":"[UNK]"}}"#;
        let err = T5Tokenizer::from_bytes(json.as_bytes(), "wordlevel.json").unwrap_err();
        assert!(err.to_string().contains("<pad>"), "{err}");
    }
}
