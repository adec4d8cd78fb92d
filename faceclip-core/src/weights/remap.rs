//! Declarative key renaming applied when a checkpoint is opened.

/// One renaming rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemapRule {
    /// Delete every occurrence of a substring (FaceCLIP's loader deletes every `model.`).
    StripSubstring(String),
    /// Replace a leading prefix.
    ReplacePrefix {
        /// Prefix to look for.
        from: String,
        /// Its replacement.
        to: String,
    },
}

/// An ordered list of [`RemapRule`]s applied to every stored key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRemap {
    rules: Vec<RemapRule>,
}

impl KeyRemap {
    /// No renaming.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rule of the reference FaceCLIP loader: delete every `model.` substring.
    pub fn faceclip() -> Self {
        Self::new().strip_substring("model.")
    }

    /// Adds a rule deleting every occurrence of `pattern`.
    pub fn strip_substring(mut self, pattern: impl Into<String>) -> Self {
        self.rules.push(RemapRule::StripSubstring(pattern.into()));
        self
    }

    /// Adds a rule replacing the leading `from` with `to`.
    pub fn replace_prefix(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.rules.push(RemapRule::ReplacePrefix {
            from: from.into(),
            to: to.into(),
        });
        self
    }

    /// Applies every rule in order to one key.
    pub fn apply(&self, key: &str) -> String {
        let mut key = key.to_string();
        for rule in &self.rules {
            key = match rule {
                RemapRule::StripSubstring(p) if !p.is_empty() => key.replace(p.as_str(), ""),
                RemapRule::StripSubstring(_) => key,
                RemapRule::ReplacePrefix { from, to } => match key.strip_prefix(from.as_str()) {
                    Some(rest) => format!("{to}{rest}"),
                    None => key,
                },
            };
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faceclip_rule_strips_every_model_dot() {
        let r = KeyRemap::faceclip();
        assert_eq!(
            r.apply("model.face_clip_l.model.proj1.weight"),
            "face_clip_l.proj1.weight"
        );
        assert_eq!(
            r.apply("face_clip_g.ln_final.bias"),
            "face_clip_g.ln_final.bias"
        );
    }

    #[test]
    fn prefix_rule_only_touches_the_start() {
        let r = KeyRemap::new().replace_prefix("encoder.", "enc.");
        assert_eq!(r.apply("encoder.x.encoder.y"), "enc.x.encoder.y");
        assert_eq!(r.apply("x.encoder.y"), "x.encoder.y");
    }
}
