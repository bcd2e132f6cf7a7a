//! The one way the adapters build their awc connector (HTTP/1.1, TLS by
//! OpenSSL), sharing what need not be per client:
//!
//! - one OpenSSL client context per process ([`shared_tls`]), with ALPN
//!   `http/1.1` and the system's CA certificates: loading the CA bundle
//!   costs about 0.7 MiB of heap and tens of milliseconds of CPU, once
//!   instead of once per client (awc's `Connector::new` and
//!   `ClientBuilder::new` still each build a default context, dropped when
//!   this one and this connector replace them); and one more per distinct
//!   CA file a runner section names (`tls-ca-file`, [`tls_with_ca_file`]:
//!   the system's certificates plus the file's, as GitLab Runner trusts
//!   them), shared by every client of that file;
//! - one host name resolver per thread ([`HostCache`]): a lookup runs on the
//!   blocking pool (`src/runtime.rs`), at most one per host and port at a
//!   time, its answer reused for [`LOOKUP_TTL`]. A burst of new connections
//!   to one API (many jobs at once) takes one lookup, not one blocking
//!   thread per connection.

use actix_tls::connect::openssl::reexports::{SslConnector, SslConnectorBuilder, SslMethod};
use actix_tls::connect::{ConnectorService, Resolve, Resolver};
use futures_util::future::{FutureExt, LocalBoxFuture, Shared};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a host name lookup's answer is reused.
pub const LOOKUP_TTL: Duration = Duration::from_secs(10);

/// A lookup still running after this long is not waited for by new
/// connections: they start their own.
pub const LOOKUP_STALE: Duration = Duration::from_secs(30);

/// ALPN protocol list: HTTP/1.1 only (length-prefixed).
const ALPN_HTTP_11: &[u8] = b"\x08http/1.1";

/// The awc connector of an adapter: HTTP/1.1, the process's TLS context
/// (or that of `ca_file`, a runner section's `tls-ca-file`), the thread's
/// [`HostCache`], `connect_timeout` for name lookup, TCP connect and TLS
/// handshake together.
pub fn connector(
    connect_timeout: Duration,
    ca_file: Option<&Path>,
) -> awc::Connector<ConnectorService> {
    let tcp = actix_tls::connect::Connector::new(Resolver::custom(HostCache::shared())).service();
    let connector = awc::Connector::new()
        .connector(tcp)
        .timeout(connect_timeout);
    // A CA file that no longer loads (checked at start-up and at each
    // reload, so removed since) leaves the system's certificates only: its
    // servers' handshakes then fail, each call saying so.
    let tls = match ca_file {
        Some(path) => tls_with_ca_file(path).ok(),
        None => shared_tls(),
    };
    match tls.or_else(shared_tls) {
        Some(tls) => connector.openssl(tls),
        // awc's own context, built again with ALPN `http/1.1` only
        None => connector.max_http_version(awc::http::Version::HTTP_11),
    }
}

/// A client context with ALPN `http/1.1` and the system's CA certificates.
fn client_context() -> Option<SslConnectorBuilder> {
    let mut builder = SslConnector::builder(SslMethod::tls()).ok()?;
    builder.set_alpn_protos(ALPN_HTTP_11).ok()?;
    Some(builder)
}

/// The process's OpenSSL client context (peer verification with the
/// system's CA certificates, ALPN `http/1.1`); `None` when OpenSSL could
/// not build one.
pub fn shared_tls() -> Option<SslConnector> {
    static TLS: OnceLock<Option<SslConnector>> = OnceLock::new();
    TLS.get_or_init(|| client_context().map(SslConnectorBuilder::build))
        .clone()
}

/// The client context of a runner section's `tls-ca-file`: the system's
/// CA certificates and the file's (PEM), built once per file and process;
/// or why the file cannot be used.
pub fn tls_with_ca_file(ca_file: &Path) -> Result<SslConnector, String> {
    static BY_FILE: OnceLock<Mutex<HashMap<PathBuf, SslConnector>>> = OnceLock::new();
    let contexts = BY_FILE.get_or_init(Mutex::default);
    let mut contexts = contexts
        .lock()
        .map_err(|_| "the TLS contexts' lock is poisoned".to_string())?;
    if let Some(tls) = contexts.get(ca_file) {
        return Ok(tls.clone());
    }
    let mut builder =
        client_context().ok_or_else(|| "OpenSSL cannot build a client context".to_string())?;
    builder
        .set_ca_file(ca_file)
        .map_err(|e| format!("no PEM certificate could be loaded from it ({e})"))?;
    let tls = builder.build();
    contexts.insert(ca_file.to_path_buf(), tls.clone());
    Ok(tls)
}

type Lookup = Shared<LocalBoxFuture<'static, Result<Vec<SocketAddr>, String>>>;

enum Entry {
    /// An answer, and when it came.
    Known(Vec<SocketAddr>, Instant),
    /// A lookup under way, and when it started.
    Pending(Lookup, Instant),
}

/// Host name answers shared by the clients of one thread (see the module
/// documentation). Cloning shares the cache.
#[derive(Clone, Default)]
pub struct HostCache {
    entries: Rc<RefCell<HashMap<(String, u16), Entry>>>,
    lookups: Rc<std::cell::Cell<u64>>,
}

thread_local! {
    static SHARED: HostCache = HostCache::default();
}

impl HostCache {
    /// The cache of the current thread.
    pub fn shared() -> HostCache {
        SHARED.with(HostCache::clone)
    }

    /// Lookups started so far (not answered from the cache).
    pub fn lookups(&self) -> u64 {
        self.lookups.get()
    }

    /// The addresses of `host:port`, from the cache or from one lookup on
    /// the blocking pool shared by every caller that asks meanwhile.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let key = (host.to_owned(), port);
        let now = Instant::now();
        let lookup = {
            let mut entries = self.entries.borrow_mut();
            match entries.get(&key) {
                Some(Entry::Known(addrs, at)) if now.duration_since(*at) < LOOKUP_TTL => {
                    return Ok(addrs.clone());
                }
                Some(Entry::Pending(lookup, at)) if now.duration_since(*at) < LOOKUP_STALE => {
                    lookup.clone()
                }
                _ => {
                    self.lookups.set(self.lookups.get() + 1);
                    let target = key.clone();
                    let lookup = async move {
                        actix_rt::task::spawn_blocking(move || {
                            target
                                .to_socket_addrs()
                                .map(Iterator::collect::<Vec<_>>)
                                .map_err(|e| e.to_string())
                        })
                        .await
                        .map_err(|e| format!("the name lookup task failed: {e}"))?
                    }
                    .boxed_local()
                    .shared();
                    entries.insert(key.clone(), Entry::Pending(lookup.clone(), now));
                    lookup
                }
            }
        };
        let answer = lookup.clone().await;
        let mut entries = self.entries.borrow_mut();
        // only the lookup this caller waited for settles the entry
        if let Some(Entry::Pending(current, _)) = entries.get(&key) {
            if current.ptr_eq(&lookup) {
                match &answer {
                    Ok(addrs) => {
                        entries.insert(key, Entry::Known(addrs.clone(), Instant::now()));
                    }
                    Err(_) => {
                        entries.remove(&key);
                    }
                }
            }
        }
        answer
    }
}

impl Resolve for HostCache {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        async move { self.resolve(host, port).await.map_err(Into::into) }.boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_lookups_of_one_host_share_one_and_answers_are_reused() {
        let system = crate::runtime::system_with(1).expect("runtime");
        let cache = HostCache::default();
        let answers = system.block_on(async {
            let mut all = Vec::new();
            let burst = (0..20).map(|_| cache.resolve("localhost", 8080));
            all.extend(futures_util::future::join_all(burst).await);
            all.push(cache.resolve("localhost", 8080).await);
            all
        });
        assert_eq!(cache.lookups(), 1);
        assert_eq!(answers.len(), 21);
        for a in &answers {
            let addrs = a.as_ref().expect("localhost resolves");
            assert!(
                !addrs.is_empty()
                    && addrs
                        .iter()
                        .all(|a| a.port() == 8080 && a.ip().is_loopback()),
                "{addrs:?}"
            );
        }
    }

    /// Answers `n` requests on `listener` with `200 ok` (each on its own
    /// connection), within `limit`.
    fn serve_ok(listener: std::net::TcpListener, n: usize, limit: Duration) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + limit;
        listener.set_nonblocking(true).expect("nonblocking");
        let mut served = 0;
        while served < n && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = [0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(k) => got.extend_from_slice(&buf[..k]),
                        }
                    }
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    );
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    #[test]
    fn clients_connect_by_host_name_with_one_lookup_on_a_bounded_pool() {
        const REQUESTS: usize = 4;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server =
            std::thread::spawn(move || serve_ok(listener, REQUESTS, Duration::from_secs(20)));
        let system = crate::runtime::system_with(1).expect("runtime");
        let statuses = system.block_on(async {
            let client = awc::Client::builder()
                .connector(connector(Duration::from_secs(5), None))
                .timeout(Duration::from_secs(10))
                .finish();
            // 127.0.0.1 by name: "localhost" may also give ::1, where
            // nothing listens, and the connector then tries the next address
            let url = format!("http://localhost:{port}/");
            let sends = (0..REQUESTS).map(|_| client.get(url.as_str()).send());
            futures_util::future::join_all(sends)
                .await
                .into_iter()
                .map(|r| {
                    r.map(|resp| resp.status().as_u16())
                        .map_err(|e| e.to_string())
                })
                .collect::<Vec<_>>()
        });
        let _ = server.join();
        assert_eq!(statuses, vec![Ok(200); REQUESTS]);
        assert_eq!(HostCache::shared().lookups(), 1);
    }

    #[test]
    fn failed_lookups_are_not_kept() {
        let system = crate::runtime::system_with(1).expect("runtime");
        let cache = HostCache::default();
        // `.invalid` never resolves (RFC 6761)
        let (first, second) = system.block_on(async {
            let first = cache.resolve("no-such-host.invalid", 80).await;
            let second = cache.resolve("no-such-host.invalid", 80).await;
            (first, second)
        });
        assert!(first.is_err() && second.is_err());
        assert_eq!(cache.lookups(), 2);
    }

    #[test]
    fn the_tls_context_is_built_once() {
        let (Some(a), Some(b)) = (shared_tls(), shared_tls()) else {
            panic!("OpenSSL builds a client context");
        };
        assert!(std::ptr::eq(a.context(), b.context()));
    }

    #[test]
    fn a_ca_file_that_holds_no_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        assert!(tls_with_ca_file(&missing).is_err());
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").expect("write");
        let e = tls_with_ca_file(&garbage).expect_err("no certificate");
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
