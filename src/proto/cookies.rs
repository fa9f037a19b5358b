//! A small cookie jar for runtimes without one (Workers, Deno, Node): `Set-Cookie` in, `Cookie` out.
//!
//! One jar per client instance (one CometD session per jar, see the protocol digest §8). The jar
//! stores `name=value` pairs verbatim (values are never decoded or re-encoded: Salesforce values
//! contain `! / + =`), honours `Max-Age<=0` and an `Expires` date in the past (loosely: the
//! year is compared against `now_year` when given) as deletion, and ignores all other attributes.

/// Maximum number of cookies kept (oldest dropped first).
pub const MAX_COOKIES: usize = 50;
/// Maximum length of one `name=value` pair kept.
pub const MAX_COOKIE_LEN: usize = 4096;

/// A per-client cookie jar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> CookieJar {
        CookieJar::default()
    }

    /// Store one `Set-Cookie` header value (call once per header; use `Headers.getSetCookie()`).
    pub fn handle_set_cookie(&mut self, header_value: &str) {
        let mut parts = header_value.split(';');
        let Some(pair) = parts.next() else { return };
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        let name = name.trim();
        let value = value.trim();
        if name.is_empty() || name.len() + value.len() + 1 > MAX_COOKIE_LEN {
            return;
        }
        if name.chars().any(|c| c.is_control() || c == ' ' || c == ',')
            || value.chars().any(char::is_control)
        {
            return;
        }
        let mut delete = false;
        for attr in parts {
            let (k, v) = match attr.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => (attr.trim(), ""),
            };
            if k.eq_ignore_ascii_case("max-age") {
                if let Ok(n) = v.parse::<i64>() {
                    delete = n <= 0;
                }
            } else if k.eq_ignore_ascii_case("expires") && expires_in_past(v) {
                delete = true;
            }
        }
        self.cookies.retain(|(n, _)| n != name);
        if delete {
            return;
        }
        if self.cookies.len() >= MAX_COOKIES {
            self.cookies.remove(0);
        }
        self.cookies.push((name.to_string(), value.to_string()));
    }

    /// The `Cookie` request header value (`"a=b; c=d"`), or `None` when the jar is empty.
    pub fn cookie_header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        let mut out = String::new();
        for (i, (n, v)) in self.cookies.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            out.push_str(n);
            out.push('=');
            out.push_str(v);
        }
        Some(out)
    }

    /// The value of cookie `name`, if stored.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Number of cookies stored.
    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    /// True when no cookie is stored.
    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }

    /// Forget every cookie.
    pub fn clear(&mut self) {
        self.cookies.clear();
    }
}

/// Loose check for an `Expires` date in the past: any year before 2000 (servers delete cookies with
/// `Expires=Thu, 01 Jan 1970 00:00:00 GMT`). The core has no wall clock here, so later dates are kept.
fn expires_in_past(v: &str) -> bool {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|t| t.len() == 4)
        .filter_map(|t| t.parse::<u32>().ok())
        .any(|y| y < 2000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_sends_verbatim() {
        let mut j = CookieJar::new();
        assert_eq!(j.cookie_header(), None);
        j.handle_set_cookie("BAYEUX_BROWSER=abc123; Path=/; HttpOnly");
        j.handle_set_cookie("sfdc-stream=!a/b+c==; path=/; Expires=Wed, 01 Jan 2031 00:00:00 GMT; SameSite=None; Secure");
        assert_eq!(
            j.cookie_header().as_deref(),
            Some("BAYEUX_BROWSER=abc123; sfdc-stream=!a/b+c==")
        );
        j.handle_set_cookie("sfdc-stream=new%2Fvalue; path=/");
        assert_eq!(j.get("sfdc-stream"), Some("new%2Fvalue"));
        assert_eq!(j.len(), 2);
    }

    #[test]
    fn deletes() {
        let mut j = CookieJar::new();
        j.handle_set_cookie("a=1");
        j.handle_set_cookie("b=2");
        j.handle_set_cookie("a=; Max-Age=0");
        assert_eq!(j.cookie_header().as_deref(), Some("b=2"));
        j.handle_set_cookie("b=gone; Expires=Thu, 01 Jan 1970 00:00:00 GMT");
        assert!(j.is_empty());
        j.handle_set_cookie("c=3; Max-Age=100");
        assert_eq!(j.get("c"), Some("3"));
    }

    #[test]
    fn ignores_garbage_and_bounds() {
        let mut j = CookieJar::new();
        for g in ["", "noequals", "=v", "a b=c", "x=\u{0}", ";;;"] {
            j.handle_set_cookie(g);
        }
        assert!(j.is_empty());
        j.handle_set_cookie(&format!("big={}", "x".repeat(10_000)));
        assert!(j.is_empty());
        for i in 0..200 {
            j.handle_set_cookie(&format!("c{i}=v"));
        }
        assert_eq!(j.len(), MAX_COOKIES);
        assert_eq!(j.get("c199"), Some("v"));
        assert_eq!(j.get("c0"), None);
    }
}
