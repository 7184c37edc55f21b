//! Routes in Spin's syntax: `/hello` matches exactly, `/api/...` matches `/api` and everything
//! below it, `/...` matches everything. Exact routes win over prefixes; longer prefixes win.

/// A route pattern that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("route `{route}`: {reason}")]
pub struct RouteError {
    /// The route as written.
    pub route: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// The prefix without its trailing `/...`; empty for `/...`.
    Prefix(String),
}

/// Maps request paths to targets (indices into the app's components).
#[derive(Clone, Debug, Default)]
pub struct Router {
    routes: Vec<(Pattern, usize)>,
}

impl Router {
    /// Adds `route` for `target`. Rejects malformed and duplicate routes.
    pub fn add(&mut self, route: &str, target: usize) -> Result<(), RouteError> {
        let bad = |reason| Err(RouteError { route: route.to_string(), reason });
        if !route.starts_with('/') {
            return bad("must start with `/`");
        }
        let pattern = match route.strip_suffix("/...") {
            Some(prefix) => Pattern::Prefix(prefix.to_string()),
            None => Pattern::Exact(route.to_string()),
        };
        let body = match &pattern {
            Pattern::Exact(p) | Pattern::Prefix(p) => p,
        };
        if body.contains("...") || body.contains(['?', '#', '*']) {
            return bad("only a trailing `/...` may be a wildcard, and no `?`, `#` or `*`");
        }
        if self.routes.iter().any(|(p, _)| *p == pattern) {
            return bad("is defined twice");
        }
        self.routes.push((pattern, target));
        Ok(())
    }

    /// Every route's target, in order (with repeats).
    pub fn targets(&self) -> impl Iterator<Item = usize> + '_ {
        self.routes.iter().map(|(_, target)| *target)
    }

    /// Renumbers every target through `map` (when the caller drops components no route uses).
    pub fn remap(&mut self, map: impl Fn(usize) -> usize) {
        for (_, target) in &mut self.routes {
            *target = map(*target);
        }
    }

    /// The target for `path` (no query), if any route matches.
    pub fn route(&self, path: &str) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None; // (prefix length, target)
        for (pattern, target) in &self.routes {
            match pattern {
                Pattern::Exact(p) if p == path => return Some(*target),
                Pattern::Prefix(p)
                    if (path == p || path.strip_prefix(p.as_str()).is_some_and(|r| r.starts_with('/')))
                        && best.is_none_or(|(len, _)| p.len() > len) =>
                {
                    best = Some((p.len(), *target));
                }
                _ => {}
            }
        }
        best.map(|(_, target)| target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_then_longest_prefix() {
        let mut r = Router::default();
        r.add("/...", 0).unwrap();
        r.add("/api/...", 1).unwrap();
        r.add("/api/v2/...", 2).unwrap();
        r.add("/api/health", 3).unwrap();
        assert_eq!(r.route("/"), Some(0));
        assert_eq!(r.route("/apiary"), Some(0));
        assert_eq!(r.route("/api"), Some(1));
        assert_eq!(r.route("/api/x/y"), Some(1));
        assert_eq!(r.route("/api/v2"), Some(2));
        assert_eq!(r.route("/api/v2/items"), Some(2));
        assert_eq!(r.route("/api/health"), Some(3));
        assert_eq!(r.route("/api/health/x"), Some(1));
    }

    #[test]
    fn no_catch_all_means_no_match() {
        let mut r = Router::default();
        r.add("/hello", 0).unwrap();
        assert_eq!(r.route("/hello"), Some(0));
        assert_eq!(r.route("/hello/"), None);
        assert_eq!(r.route("/other"), None);
    }

    #[test]
    fn bad_routes() {
        let mut r = Router::default();
        r.add("/a", 0).unwrap();
        for bad in ["a", "/a", "/x/.../y", "/x*", "/q?x"] {
            assert!(r.add(bad, 1).is_err(), "{bad}");
        }
    }
}
