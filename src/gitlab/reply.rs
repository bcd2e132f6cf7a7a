//! The coordinator's answer to one call, as the client read it: what the
//! calls and the error mapping both read.

use awc::http::header::HeaderMap;

/// An answer, body read (or counted).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    /// The body (empty in `Count` mode).
    pub(crate) body: Vec<u8>,
    /// Body length in bytes.
    pub(crate) body_len: u64,
}

impl Reply {
    /// A header value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}
