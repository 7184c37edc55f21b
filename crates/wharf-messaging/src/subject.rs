//! NATS subjects and the patterns grants and triggers are written in: `.`-separated tokens,
//! `*` for exactly one token, `>` (last) for one or more.

/// The longest subject or pattern accepted, in bytes.
pub const MAX_SUBJECT_LEN: usize = 256;

/// Whether `token` is a literal token Wharf accepts: ASCII letters, digits, `_`, `-`, `$`
/// (what NATS names use; no spaces, no wildcard characters, no control characters).
fn literal(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-$".contains(&b))
}

/// Checks a subject a message is sent to (no wildcards). The error says what is expected.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.len() > MAX_SUBJECT_LEN || !subject.split('.').all(literal) {
        return Err(format!(
            "expected a subject of `.`-separated tokens (letters, digits, `_`, `-`, `$`), at most \
             {MAX_SUBJECT_LEN} bytes"
        ));
    }
    Ok(())
}

/// Checks a pattern (a subject that may use `*` tokens and a final `>`).
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let tokens: Vec<&str> = pattern.split('.').collect();
    let ok = pattern.len() <= MAX_SUBJECT_LEN
        && tokens.iter().enumerate().all(|(i, t)| literal(t) || *t == "*" || (*t == ">" && i == tokens.len() - 1));
    if !ok {
        return Err(format!(
            "expected a subject pattern of `.`-separated tokens (letters, digits, `_`, `-`, `$`), \
             `*` for one token and a final `>` for the rest, at most {MAX_SUBJECT_LEN} bytes"
        ));
    }
    Ok(())
}

/// Whether the subject `subject` matches `pattern` (both checked).
pub fn matches(pattern: &str, subject: &str) -> bool {
    covers(pattern, subject)
}

/// Whether every subject `inner` matches also matches `outer` (patterns, or subjects as the
/// patterns that match only themselves): `orders.>` covers `orders.*.new`, `*.new` does not
/// cover `>`.
pub fn covers(outer: &str, inner: &str) -> bool {
    let mut outer = outer.split('.');
    let mut inner = inner.split('.');
    loop {
        match (outer.next(), inner.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(o), Some(i)) if o == i => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        assert!(check_subject("orders.new").is_ok());
        assert!(check_subject("_INBOX.abc-1").is_ok());
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b", "a\u{0}", "a\r\nPUB x 1", &"a".repeat(300)] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
        for good in ["orders.*", "orders.>", ">", "*", "*.new.>"] {
            assert!(check_pattern(good).is_ok(), "{good}");
        }
        for bad in ["orders.>.x", "a*", "a.>x", "", "a..b"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_and_coverage() {
        assert!(matches("orders.*", "orders.new"));
        assert!(!matches("orders.*", "orders.new.eu"));
        assert!(matches("orders.>", "orders.new.eu"));
        assert!(!matches("orders.>", "orders"));
        assert!(!matches("orders.*", "payments.new"));
        assert!(matches(">", "x"));
        assert!(covers("orders.>", "orders.*.new"));
        assert!(covers("orders.*", "orders.*"));
        assert!(!covers("orders.*", "orders.>"));
        assert!(!covers("*.new", ">"));
        assert!(!covers("orders.new", "orders.*"));
    }
}
