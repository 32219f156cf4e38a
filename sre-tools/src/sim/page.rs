//! List pagination as the API server does it: `limit` cuts a list into pages, and each page but
//! the last carries a `continue` token — the base64url (unpadded) of
//! `{"v":"meta.k8s.io/v1","rv":RV,"start":"KEY\u0000"}`, where `KEY` is the last returned key
//! below the list's prefix (`name` in a namespace or for a cluster-scoped type, `namespace/name`
//! across namespaces) and `RV` the resourceVersion of the first page.
//!
//! Unlike etcd, the simulator keeps no snapshot per token: a later page shows the objects as
//! they are when it is asked for (what the API server does once a token's revision has been
//! compacted and the client continues anyway), and carries the first page's resourceVersion.

use serde::{Deserialize, Serialize};

const VERSION: &str = "meta.k8s.io/v1";
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Where a page starts, and the resourceVersion of the list it continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Continue {
    #[serde(rename = "v")]
    version: String,
    /// The first page's resourceVersion.
    pub(crate) rv: u64,
    /// The key the page starts at (inclusive): the last key of the previous page and a NUL.
    pub(crate) start: String,
}

impl Continue {
    /// The token for a page that starts after `last_key` of a list at `rv`.
    pub(crate) fn after(last_key: &str, rv: u64) -> Self {
        Self {
            version: VERSION.to_owned(),
            rv,
            start: format!("{last_key}\0"),
        }
    }

    /// The token as the API server writes it.
    pub(crate) fn encode(&self) -> String {
        // A struct of strings and a number always serializes.
        base64url(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    /// Reads a token; `Err` is the API server's message for a 400.
    pub(crate) fn decode(token: &str) -> Result<Self, String> {
        let invalid =
            |why: String| format!("invalid continue token: continue key is not valid: {why}");
        let bytes = unbase64url(token).map_err(invalid)?;
        let c: Self = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
        if c.version != VERSION {
            return Err(invalid(format!(
                "server does not recognize this encoded version {:?}",
                c.version
            )));
        }
        if c.rv == 0 {
            return Err(invalid(format!(
                "incorrect encoded start resourceVersion (version {VERSION})"
            )));
        }
        if c.start.is_empty() {
            return Err(invalid(format!(
                "encoded start key empty (version {VERSION})"
            )));
        }
        // The API server refuses keys that would leave the list's prefix (`..`, absolute paths).
        if c.start
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(invalid(c.start.clone()));
        }
        Ok(c)
    }

    /// The (namespace, name) the page starts at, for a list in namespace `ns` or, when `None`,
    /// across namespaces (or of a cluster-scoped type, `namespaced` false).
    pub(crate) fn start_at(&self, ns: Option<&str>, namespaced: bool) -> (String, String) {
        match ns {
            Some(ns) => (ns.to_owned(), self.start.clone()),
            None if !namespaced => (String::new(), self.start.clone()),
            None => match self.start.split_once('/') {
                Some((ns, name)) => (ns.to_owned(), name.to_owned()),
                None => (self.start.clone(), String::new()),
            },
        }
    }
}

fn base64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

fn unbase64url(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut n = 0u32;
    let mut bits = 0;
    for (i, c) in s.bytes().enumerate() {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .ok_or_else(|| format!("illegal base64 data at input byte {i}"))?;
        n = (n << 6) | u32::try_from(v).unwrap_or(0);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((n >> bits) & 0xff).unwrap_or(0));
        }
    }
    // A lone trailing character carries fewer than 8 bits: not a valid encoding.
    if bits >= 6 {
        return Err(format!("illegal base64 data at input byte {}", s.len() - 1));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_every_length() {
        for len in 0..10 {
            let bytes: Vec<u8> = (0..len)
                .map(|i: u8| i.wrapping_mul(37).wrapping_add(250))
                .collect();
            let enc = base64url(&bytes);
            assert!(!enc.contains('='), "unpadded");
            assert_eq!(unbase64url(&enc).unwrap(), bytes);
        }
        assert_eq!(base64url(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw");
        assert_eq!(
            unbase64url("a").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(
            unbase64url("ab+c").unwrap_err(),
            "illegal base64 data at input byte 2"
        );
    }

    #[test]
    fn tokens_are_the_api_servers() {
        let c = Continue::after("shop/web-1", 1234);
        let token = c.encode();
        assert_eq!(
            String::from_utf8(unbase64url(&token).unwrap()).unwrap(),
            r#"{"v":"meta.k8s.io/v1","rv":1234,"start":"shop/web-1\u0000"}"#
        );
        assert_eq!(Continue::decode(&token).unwrap(), c);
        assert_eq!(
            c.start_at(None, true),
            ("shop".to_owned(), "web-1\0".to_owned())
        );
        let bad = |json: &str| Continue::decode(&base64url(json.as_bytes())).unwrap_err();
        assert_eq!(
            bad(r#"{"v":"meta.k8s.io/v2","rv":1,"start":"a"}"#),
            "invalid continue token: continue key is not valid: server does not recognize this encoded version \"meta.k8s.io/v2\""
        );
        assert!(bad(r#"{"v":"meta.k8s.io/v1","rv":0,"start":"a"}"#).contains("resourceVersion"));
        assert!(bad(r#"{"v":"meta.k8s.io/v1","rv":1,"start":"../x"}"#).ends_with("../x"));
        assert!(
            Continue::decode("!!")
                .unwrap_err()
                .starts_with("invalid continue token: continue key is not valid: illegal base64")
        );
    }
}
