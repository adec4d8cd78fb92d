//! OpenCLIP's text cleaning: a `ftfy.fix_text` subset, double HTML unescape, whitespace
//! collapsing and lower-casing.
//!
//! `ftfy` repairs mojibake (UTF-8 decoded as Latin-1 and the like); that heuristic is not
//! reproduced. What is reproduced are the fixes that change ordinary prompts: NFC
//! normalisation, straight quotes for curly ones, Latin ligatures split, full-width ASCII made
//! narrow, control characters removed and line separators turned into newlines.

use unicode_normalization::UnicodeNormalization;

/// Cleans `text` the way OpenCLIP's tokenizer does before splitting it.
pub fn clean(text: &str) -> String {
    let fixed = fix_text(text);
    let unescaped = unescape_html(&unescape_html(&fixed, Rule::Python), Rule::Python);
    collapse_whitespace(unescaped.trim()).to_lowercase()
}

/// Cleans `text` the way Hugging Face's `CLIPTokenizer` does (ftfy fixes, no HTML unescape).
pub fn clean_hf(text: &str) -> String {
    collapse_whitespace(fix_text(text).trim()).to_lowercase()
}

/// The `ftfy.fix_text` subset described in the module docs.
fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfc() {
        match c {
            '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' => out.push('\''),
            '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' => out.push('"'),
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            '\u{FF01}'..='\u{FF5E}' => {
                out.push(char::from_u32(c as u32 - 0xFF01 + 0x21).unwrap_or(c))
            }
            '\u{3000}' => out.push(' '),
            '\r' | '\u{2028}' | '\u{2029}' | '\u{0085}' => out.push('\n'),
            '\t' | '\n' => out.push(c),
            c if is_removable_control(c) => {}
            c => out.push(c),
        }
    }
    // ftfy decodes complete entities (`&name;`, `&#n;`) until none is left, unless the text
    // looks like HTML (contains `<`).
    if !out.contains('<') {
        loop {
            let next = unescape_html(&out, Rule::Ftfy);
            if next == out {
                break;
            }
            out = next;
        }
    }
    out
}

/// Control characters `ftfy.remove_control_chars` deletes.
fn is_removable_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC
        | 0x1D173..=0x1D17A | 0xE0000..=0xE007F)
}

/// Python's `re.sub(r"\s+", " ", text)`.
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        if is_python_space(c) {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out.trim_matches(is_python_space).to_string()
}

/// Python's `str.isspace` (Unicode White_Space plus the ASCII information separators).
pub(crate) fn is_python_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1C}'..='\u{1F}')
}

/// Which entity syntax is decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// `ftfy`: only complete references ending in `;`.
    Ftfy,
    /// Python's `html.unescape`: also numeric references without `;` and the legacy named
    /// entities as a prefix (`&ampx` → `&x`).
    Python,
}

/// Decodes numeric references and the common named entities under `rule`.
fn unescape_html(text: &str, rule: Rule) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        match decode_reference(rest, rule) {
            Some((decoded, used)) => {
                out.push_str(&decoded);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes one `&...` reference at the start of `s`: the text and the bytes it used.
fn decode_reference(s: &str, rule: Rule) -> Option<(String, usize)> {
    let body = &s[1..];
    if let Some(num) = body.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 3),
            None => (num, 10, 2),
        };
        let len = digits.chars().take_while(|c| c.is_digit(radix)).count();
        let semicolon = digits[len..].starts_with(';');
        if len == 0 || (rule == Rule::Ftfy && !semicolon) {
            return None;
        }
        let value = u32::from_str_radix(&digits[..len], radix).unwrap_or(u32::MAX);
        return Some((
            numeric_char(value).to_string(),
            skip + len + usize::from(semicolon),
        ));
    }
    let name_len = body
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    let name = &body[..name_len];
    if body[name_len..].starts_with(';') {
        if let Some(decoded) = named_entity(name) {
            return Some((decoded.to_string(), name_len + 2));
        }
    }
    if rule == Rule::Ftfy {
        return None;
    }
    let legacy = LEGACY_WITHOUT_SEMICOLON
        .iter()
        .filter(|l| name.starts_with(**l))
        .max_by_key(|l| l.len())?;
    Some((named_entity(legacy)?.to_string(), 1 + legacy.len()))
}

/// Python's rules for numeric character references (invalid code points and the C1 range).
fn numeric_char(value: u32) -> char {
    const CP1252: [u32; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
        0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ];
    match value {
        0 | 0xD800..=0xDFFF => '\u{FFFD}',
        0x80..=0x9F => char::from_u32(CP1252[(value - 0x80) as usize]).unwrap_or('\u{FFFD}'),
        v => char::from_u32(v).unwrap_or('\u{FFFD}'),
    }
}

/// Entities of [`named_entity`] that Python also decodes without the trailing `;` (HTML 4's
/// Latin-1 set).
const LEGACY_WITHOUT_SEMICOLON: &[&str] = &[
    "amp", "lt", "gt", "quot", "nbsp", "copy", "reg", "AMP", "LT", "GT", "QUOT", "COPY", "REG",
    "laquo", "raquo", "pound", "yen", "cent", "deg", "times", "divide", "middot", "eacute",
    "egrave", "aacute", "agrave", "uuml", "ouml", "auml", "szlig", "ntilde", "ccedil",
];

fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" | "AMP" => "&",
        "lt" | "LT" => "<",
        "gt" | "GT" => ">",
        "quot" | "QUOT" => "\"",
        "apos" => "'",
        "nbsp" => "\u{A0}",
        "copy" | "COPY" => "©",
        "reg" | "REG" => "®",
        "trade" => "™",
        "hellip" => "…",
        "mdash" => "—",
        "ndash" => "–",
        "lsquo" => "‘",
        "rsquo" => "’",
        "ldquo" => "“",
        "rdquo" => "”",
        "laquo" => "«",
        "raquo" => "»",
        "euro" => "€",
        "pound" => "£",
        "yen" => "¥",
        "cent" => "¢",
        "deg" => "°",
        "times" => "×",
        "divide" => "÷",
        "middot" => "·",
        "bull" => "•",
        "eacute" => "é",
        "egrave" => "è",
        "aacute" => "á",
        "agrave" => "à",
        "uuml" => "ü",
        "ouml" => "ö",
        "auml" => "ä",
        "szlig" => "ß",
        "ntilde" => "ñ",
        "ccedil" => "ç",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_like_ftfy_then_python_twice() {
        // Expected strings printed by ftfy 6.3.1 + html.unescape twice (Python 3.11).
        assert_eq!(
            clean("a &amp;amp; b &lt;3 &#x1F600; &#233;"),
            "a & b <3 😀 é"
        );
        assert_eq!(clean("&unknown; & alone"), "&unknown; & alone");
        assert_eq!(clean("&amp;amp;amp;"), "&");
        assert_eq!(clean("<b> &amp;amp;amp;"), "<b> &amp;");
        assert_eq!(clean("&ampfoo &ampx;"), "&foo &x;");
        assert_eq!(clean("&eacute &hellip x a&#x41b"), "é &hellip x aл");
    }

    #[test]
    fn fixes_quotes_ligatures_width_and_space() {
        assert_eq!(
            clean("  “Smart”\u{A0}‘quotes’ ﬁne ＦＵＬＬ\r\nline\u{0}  "),
            "\"smart\" 'quotes' fine full line"
        );
    }
}
