//! Showing untrusted text to a human safely.
//!
//! Tool arguments, object names, images, log lines and model output can carry terminal escape
//! sequences (ESC, the 8-bit CSI `U+009B`, OSC) or bidirectional and invisible characters that make
//! a terminal, a chat client or a report show something other than what will be applied.
//! [`escape_untrusted`] renders every such character visibly (`\e`, `\u{9b}`, `\u{202e}`); use it on
//! every untrusted string before it reaches a prompt, a report, a progress line or a chat message.
//! [`escape_untrusted_lines`] keeps line breaks for multi-line text such as diffs.
//!
//! ```
//! use sre_core::text::escape_untrusted;
//! assert_eq!(escape_untrusted("nginx:1.25\u{1b}[2K"), "nginx:1.25\\e[2K");
//! assert_eq!(escape_untrusted("plain"), "plain");
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters that change how surrounding text is displayed without being visible
/// themselves: bidirectional controls, zero-width characters, and other format characters.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}'                    // soft hyphen
        | '\u{061c}'                  // Arabic letter mark
        | '\u{115f}' | '\u{1160}'     // Hangul fillers
        | '\u{180e}'                  // Mongolian vowel separator
        | '\u{200b}'..='\u{200f}'     // zero-width space/joiners, LRM, RLM
        | '\u{2028}' | '\u{2029}'     // line and paragraph separators
        | '\u{202a}'..='\u{202e}'     // bidi embeddings and overrides
        | '\u{2060}'..='\u{206f}'     // word joiner, invisible operators, bidi isolates
        | '\u{3164}'                  // Hangul filler
        | '\u{feff}'                  // zero-width no-break space / BOM
        | '\u{fff9}'..='\u{fffb}'     // interlinear annotations
        | '\u{e0000}'..='\u{e007f}'   // tags
    )
}

fn needs_escape(c: char, keep_newlines: bool) -> bool {
    if c == '\n' {
        return !keep_newlines;
    }
    c.is_control() || is_invisible(c)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\u{1b}' => out.push_str("\\e"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        '\n' => out.push_str("\\n"),
        '\0' => out.push_str("\\0"),
        c => {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
}

fn escape(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if needs_escape(c, keep_newlines) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` with every control character (C0, DEL, C1 — including ESC and CSI), line break and
/// invisible or bidirectional formatting character written as a visible escape. One line in, one
/// line out.
pub fn escape_untrusted(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Like [`escape_untrusted`], but `\n` stays a line break (for diffs and multi-line reports).
pub fn escape_untrusted_lines(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// A deserializer's message with the input values it quotes left out: serde's `invalid type:
/// string "…", expected …` (and `invalid value: …`) quote a value of the input whole, which can
/// be a log line with a credential, so `string "…"` becomes `string (N characters)`. Field and
/// variant names (quoted with backticks) stay when they are plain identifiers — they say what
/// was wrong — and become their length otherwise (``unknown field `(48 characters)` ``).
///
/// ```
/// use sre_core::text::elide_quoted_values;
/// assert_eq!(
///     elide_quoted_values(r#"images: invalid type: string "token=abc \"x\"", expected a map at line 3"#),
///     "images: invalid type: string (13 characters), expected a map at line 3"
/// );
/// ```
pub fn elide_quoted_values(message: &str) -> String {
    const OPEN: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let quoted = &rest[at + OPEN.len()..];
        // The value as Rust's Debug writes it: up to the first quote not escaped.
        let mut chars = 0usize;
        let mut escaped = false;
        let mut end = None;
        for (k, c) in quoted.char_indices() {
            if escaped {
                escaped = false;
                chars += 1;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(k);
                break;
            } else {
                chars += 1;
            }
        }
        if let Some(k) = end {
            let _ = write!(out, "string ({chars} characters)");
            rest = &quoted[k + 1..];
        } else {
            // No closing quote: drop the rest rather than quote half a value.
            out.push_str("string (…)");
            rest = "";
        }
    }
    out.push_str(rest);
    elide_odd_names(&out)
}

/// ``unknown field `…` `` and ``unknown variant `…` ``: a name that is not a plain identifier (spaces,
/// `=`, longer than 64 characters) is input text, not a misspelt key, and becomes its length.
fn elide_odd_names(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    loop {
        let at = ["unknown field `", "unknown variant `"]
            .iter()
            .filter_map(|open| rest.find(open).map(|i| (i, open.len())))
            .min();
        let Some((at, len)) = at else { break };
        out.push_str(&rest[..at + len]);
        let name = &rest[at + len..];
        let Some(end) = name.find('`') else {
            out.push_str("…`");
            rest = "";
            break;
        };
        let plain = name[..end].chars().count() <= 64
            && name[..end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if plain {
            out.push_str(&name[..=end]);
        } else {
            let _ = write!(out, "({} characters)`", name[..end].chars().count());
        }
        rest = &name[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A short description of a character for error messages: `U+001B (a control character)`.
pub fn describe_char(c: char) -> String {
    let kind = if c.is_whitespace() {
        "white space"
    } else if c.is_control() {
        "a control character"
    } else if is_invisible(c) {
        "an invisible formatting character"
    } else {
        "a character"
    };
    format!("U+{:04X} ({kind})", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_sequences_are_made_visible() {
        assert_eq!(escape_untrusted("a\u{1b}[2Kb"), "a\\e[2Kb");
        assert_eq!(escape_untrusted("a\u{9b}31mb"), "a\\u{9b}31mb");
        assert_eq!(escape_untrusted("a\u{7}b"), "a\\u{7}b");
        assert_eq!(escape_untrusted("a\rb"), "a\\rb");
        assert_eq!(escape_untrusted("a\nb"), "a\\nb");
        assert_eq!(escape_untrusted_lines("a\nb\u{1b}"), "a\nb\\e");
        assert_eq!(
            escape_untrusted("evil\u{202e}gnp.exe"),
            "evil\\u{202e}gnp.exe"
        );
        assert_eq!(escape_untrusted("zero\u{200b}width"), "zero\\u{200b}width");
        assert!(matches!(escape_untrusted("nginx:1.25 ü"), Cow::Borrowed(_)));
    }

    #[test]
    fn describes_characters() {
        assert_eq!(describe_char('\u{1b}'), "U+001B (a control character)");
        assert_eq!(describe_char(' '), "U+0020 (white space)");
    }
}
