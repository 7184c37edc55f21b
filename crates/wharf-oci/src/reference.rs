//! Image references (`[registry/]repository[:tag][@digest]`) parsed by hand, to the grammar of
//! Docker's `reference` package, which oci-spec's `Reference` implements with one regular
//! expression.
//!
//! Why not oci-spec's parser: that expression (Unicode word classes under a counted repetition)
//! is compiled on first use, which cost about a sixth of the CPU of a whole 20 MB pull
//! (BENCHMARKS.md), before a byte moved. The result here is the same `Reference`, built with
//! oci-spec's own constructors, and the same `ParseError` for each way of being wrong; a test
//! compares the two parsers on many generated inputs. One deliberate difference: a tag may
//! hold only ASCII word characters, `.` and `-`, as the distribution spec says (the regular
//! expression's `\w` also takes any Unicode letter).
use oci_client::{ParseError, Reference};

/// The longest repository name (after `library/` is added for Docker Hub names).
const NAME_TOTAL_LENGTH_MAX: usize = 255;
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";

/// Parses `input` as oci-spec's `Reference::from_str` does: no registry means `docker.io`, a
/// one-part Docker Hub name gets `library/`, and no tag or digest means the tag `latest`.
pub fn parse(input: &str) -> Result<Reference, ParseError> {
    if input.is_empty() {
        return Err(ParseError::NameEmpty);
    }
    // Neither a name nor a tag may hold `@`, so the digest is everything after the first one.
    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) if is_digest(digest) => (rest, Some(digest)),
        Some(_) => return Err(ParseError::ReferenceInvalidFormat),
        None => (input, None),
    };
    // A `:` after the last `/` starts the tag; one before it is a registry's port.
    let (name, tag) = match rest.rfind(':') {
        Some(at) if !rest[at..].contains('/') => (&rest[..at], Some(&rest[at + 1..])),
        _ => (rest, None),
    };
    if tag.is_some_and(|tag| !is_tag(tag)) || !is_name(name) {
        return Err(ParseError::ReferenceInvalidFormat);
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ParseError::NameTooLong);
    }
    if let Some(digest) = digest {
        let (algorithm, hex) = digest.split_once(':').ok_or(ParseError::DigestInvalidFormat)?;
        let expected = match algorithm {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return Err(ParseError::DigestUnsupported),
        };
        if hex.len() != expected {
            return Err(ParseError::DigestInvalidLength);
        }
    }
    Ok(match (tag, digest) {
        (Some(tag), Some(digest)) => Reference::with_tag_and_digest(registry, repository, tag.into(), digest.into()),
        (None, Some(digest)) => Reference::with_digest(registry, repository, digest.into()),
        (tag, None) => Reference::with_tag(registry, repository, tag.unwrap_or("latest").into()),
    })
}

/// `domain/path` or `path` (the first component is a domain only if the whole is not a path,
/// but both readings give the same name; [`split_domain`] decides which part is the registry).
fn is_name(name: &str) -> bool {
    is_path(name) || name.split_once('/').is_some_and(|(domain, path)| is_domain(domain) && is_path(path))
}

/// Lowercase components separated by `/`.
fn is_path(path: &str) -> bool {
    path.split('/').all(is_component)
}

/// `[a-z0-9]+` runs joined by one separator each: `.`, `_`, `__` or any number of `-`.
fn is_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().is_some_and(alnum) || !bytes.last().is_some_and(alnum) {
        return false;
    }
    let mut run = 0..0;
    for (i, b) in bytes.iter().enumerate() {
        if alnum(b) {
            if !is_separator(&bytes[run.clone()]) {
                return false;
            }
            run = i + 1..i + 1;
        } else if matches!(b, b'.' | b'_' | b'-') {
            run.end = i + 1;
        } else {
            return false;
        }
    }
    true
}

fn is_separator(run: &[u8]) -> bool {
    matches!(run, [] | [b'.'] | [b'_'] | [b'_', b'_']) || run.iter().all(|&b| b == b'-')
}

/// Host labels (`[a-zA-Z0-9]`, inner `-` allowed) joined by `.`, then an optional `:port`.
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label = |label: &str| {
        let bytes = label.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-')
    };
    host.split('.').all(label) && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn is_tag(tag: &str) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = tag.as_bytes();
    bytes.first().is_some_and(word) && bytes.len() <= 128 && bytes.iter().all(|b| word(b) || matches!(b, b'.' | b'-'))
}

/// `algorithm:hex`: algorithm components (a letter, then letters and digits) joined by one of
/// `-_+.`, and at least 32 hex digits.
fn is_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else { return false };
    let part = |part: &str| {
        let bytes = part.as_bytes();
        bytes.first().is_some_and(u8::is_ascii_alphabetic) && bytes.iter().all(u8::is_ascii_alphanumeric)
    };
    algorithm.split(['-', '_', '+', '.']).all(part) && hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The registry and repository of a valid name, as Docker splits them: the first component is
/// the registry if it has a `.` or `:` or is `localhost`; else the registry is Docker Hub,
/// where a one-component name lives under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.split_once('/') {
        Some((left, right)) if left.contains(['.', ':']) || left == "localhost" => {
            (left.to_string(), right.to_string())
        }
        _ => (DOCKER_HUB.to_string(), name.to_string()),
    };
    if domain == DOCKER_HUB_LEGACY {
        domain = DOCKER_HUB.into();
    }
    if domain == DOCKER_HUB && !remainder.contains('/') {
        remainder = format!("library/{remainder}");
    }
    (domain, remainder)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// oci-spec's regular-expression parser, the reference implementation.
    fn oracle(input: &str) -> Result<Reference, ParseError> {
        input.parse::<Reference>()
    }

    fn same(input: &str) {
        let (mine, theirs) = (parse(input), oracle(input));
        match (&mine, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(
                (a.registry(), a.repository(), a.tag(), a.digest(), a.whole()),
                (b.registry(), b.repository(), b.tag(), b.digest(), b.whole()),
                "{input:?}"
            ),
            (Err(a), Err(b)) => assert_eq!(a, b, "{input:?}"),
            _ => panic!("{input:?}: hand parser {mine:?}, oci-spec {theirs:?}"),
        }
    }

    #[test]
    fn agrees_with_oci_spec_on_known_cases() {
        let hex64 = "f".repeat(64);
        let cases = [
            "busybox".to_string(),
            "test.com:tag".into(),
            "test.com:5000".into(),
            "test.com/repo:tag".into(),
            "test:5000/repo".into(),
            "test:5000/repo:tag".into(),
            format!("test:5000/repo@sha256:{hex64}"),
            format!("test:5000/repo:tag@sha256:{hex64}"),
            format!("127.0.0.1:5000/a/b-c__d.e---f:v1.2_3-x@sha256:{hex64}"),
            "lowercase:Uppercase".into(),
            "Uppercase:tag".into(),
            "sub-dom1.foo.com/bar/baz/quux:some-long-tag".into(),
            "b.gcr.io/test.example.com/my-app:test.example.com".into(),
            format!("xn--7o8h.com/myimage:xn--7o8h.com@sha512:{}", "f".repeat(128)),
            "foo_bar.com:8080".into(),
            "foo/foo_bar.com:8080".into(),
            "localhost/x".into(),
            "index.docker.io/x".into(),
            "docker.io/library/x".into(),
            "".into(),
            ":justtag".into(),
            format!("@sha256:{hex64}"),
            "repo@sha256:ffffffffffffffffffffffffffffffffff".into(),
            format!("validname@invaliddigest:{hex64}"),
            format!("validname@sha256:{}", "f".repeat(31)),
            format!("a/{}", "b".repeat(255)),
            format!("a/{}", "b".repeat(253)),
            "b".repeat(250),
            format!("x:{}", "t".repeat(128)),
            format!("x:{}", "t".repeat(129)),
            "a//b".into(),
            "a/b/".into(),
            "/a".into(),
            "-a.com/b".into(),
            "a-.com/b".into(),
            "a.com:/b".into(),
            "a.com:5x/b".into(),
            "a:1:2/b".into(),
            "a/b:c/d".into(),
            "a@b@c".into(),
            "UPPER/Case::".into(),
            "a.-b".into(),
            "a._b".into(),
            "a___b".into(),
            "a__b".into(),
            "a..b".into(),
            "a.b".into(),
            "x:.tag".into(),
            "x:_tag".into(),
            "x:-tag".into(),
            format!("x@sha256+b.c-d_e:{hex64}"),
            format!("x@sha256:{}", "F".repeat(64)),
            format!("x@2sha:{hex64}"),
        ];
        for case in &cases {
            same(case);
        }
    }

    #[test]
    fn agrees_with_oci_spec_on_generated_inputs() {
        // Short strings over the characters the grammar cares about, from a fixed seed.
        const ALPHABET: &[u8] = b"abAB09.-_:/@";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let hex64 = "a".repeat(64);
        for _ in 0..20_000 {
            let len = (next() % 12) as usize;
            let mut input: String =
                (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char).collect();
            match next() % 4 {
                0 => input.push_str(&format!("@sha256:{hex64}")),
                1 => input.insert_str(0, "127.0.0.1:5000/"),
                _ => {}
            }
            same(&input);
        }
    }

    #[test]
    fn unicode_tags_are_refused() {
        assert!(parse("repo:täg").is_err());
        assert_eq!(parse("repo:tag").unwrap().tag(), Some("tag"));
    }
}
