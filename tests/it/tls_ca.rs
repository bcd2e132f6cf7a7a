//! A runner section's `tls-ca-file`, on loopback: a TLS server whose
//! certificate chains to a private CA the test makes (openssl crate), the
//! coordinator client's calls through it — a job request, and a trace read
//! with the trace-watch token (the trace watch's call) — trusted with the
//! CA file and refused without it; one TLS context per CA file; the
//! configuration's key through `check` and `run --local-checks-only`.

use crate::common::{run_to_end, wait_until, E2e, STEP};

use heptapod_paas_runner::gitlab::{CoordinatorSettings, GitlabCoordinator};
use heptapod_paas_runner::http_client::tls_with_ca_file;
use heptapod_paas_runner::secret::Secret;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Name, X509NameBuilder, X509};
use paas_actors::ports::{Coordinator, Job, PollKind};
use paas_sim::world::WorldConfig;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
    PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("key")
}

fn name(common_name: &str) -> X509Name {
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", common_name).expect("CN");
    name.build()
}

/// A certificate for `subject`, valid for a day, signed by `issuer` (itself
/// when `None`: the CA).
fn certificate(
    subject: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    serial: u32,
) -> X509 {
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    let serial = BigNum::from_u32(serial).and_then(|n| n.to_asn1_integer());
    b.set_serial_number(&serial.expect("serial"))
        .expect("serial");
    b.set_subject_name(&name(subject)).expect("subject");
    b.set_pubkey(key).expect("public key");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("now"))
        .expect("not before");
    b.set_not_after(&Asn1Time::days_from_now(1).expect("tomorrow"))
        .expect("not after");
    match issuer {
        None => {
            b.set_issuer_name(&name(subject)).expect("issuer");
            b.append_extension(BasicConstraints::new().critical().ca().build().expect("bc"))
                .expect("ca");
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .expect("ku"),
            )
            .expect("key usage");
            b.sign(key, MessageDigest::sha256()).expect("self-signed");
        }
        Some((ca, ca_key)) => {
            b.set_issuer_name(ca.subject_name()).expect("issuer");
            b.append_extension(BasicConstraints::new().build().expect("bc"))
                .expect("not ca");
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().expect("eku"))
                .expect("server auth");
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&b.x509v3_context(Some(ca), None))
                .expect("subject alternative names");
            b.append_extension(san).expect("san");
            b.sign(ca_key, MessageDigest::sha256())
                .expect("signed by the CA");
        }
    }
    b.build()
}

/// A private CA (its PEM file in `dir`) and a server certificate for
/// 127.0.0.1 and localhost signed by it.
struct PrivateCa {
    ca_file: PathBuf,
    server: X509,
    server_key: PKey<Private>,
}

fn private_ca(dir: &Path, file: &str) -> PrivateCa {
    let ca_key = key();
    let ca = certificate("heptapod-paas-runner test CA", &ca_key, None, 1);
    let server_key = key();
    let server = certificate("localhost", &server_key, Some((&ca, &ca_key)), 2);
    let ca_file = dir.join(file);
    std::fs::write(&ca_file, ca.to_pem().expect("PEM")).expect("write the CA file");
    PrivateCa {
        ca_file,
        server,
        server_key,
    }
}

/// The request heads a TLS server on 127.0.0.1 received, and its port.
struct TlsServer {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
    handshake_failures: Arc<Mutex<usize>>,
    thread: Option<JoinHandle<()>>,
    stop: Arc<Mutex<bool>>,
}

impl TlsServer {
    /// Serves with `ca`'s server certificate, each request on its own
    /// connection: `POST …/jobs/request` → 204, `GET …/trace` → 200 with
    /// 5 bytes, anything else → 404. At most 30 s.
    fn start(ca: &PrivateCa) -> TlsServer {
        let mut acceptor =
            SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).expect("acceptor");
        acceptor.set_private_key(&ca.server_key).expect("key");
        acceptor.set_certificate(&ca.server).expect("certificate");
        acceptor.check_private_key().expect("key matches");
        let acceptor = acceptor.build();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let handshake_failures = Arc::new(Mutex::new(0));
        let stop = Arc::new(Mutex::new(false));
        let (h, f, s) = (heads.clone(), handshake_failures.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && !*s.lock().expect("stop") {
                let Ok((tcp, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = tcp.set_nonblocking(false);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                let mut tls = match acceptor.accept(tcp) {
                    Ok(tls) => tls,
                    Err(_) => {
                        *f.lock().expect("failures") += 1;
                        continue;
                    }
                };
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") && got.len() < 65536 {
                    match tls.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got).into_owned();
                let first = head.lines().next().unwrap_or_default().to_string();
                let answer: &[u8] = if first.starts_with("POST") && first.contains("/jobs/request")
                {
                    b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else if first.starts_with("GET") && first.contains("/trace") {
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello"
                } else {
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                };
                let _ = tls.write_all(answer);
                let _ = tls.shutdown();
                h.lock().expect("heads").push(head);
            }
        });
        TlsServer {
            port,
            heads,
            handshake_failures,
            thread: Some(thread),
            stop,
        }
    }

    fn heads(&self) -> Vec<String> {
        self.heads.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn handshake_failures(&self) -> usize {
        self.handshake_failures
            .lock()
            .map(|f| *f)
            .unwrap_or_default()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if let Ok(mut stop) = self.stop.lock() {
            *stop = true;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A coordinator client of `https://127.0.0.1:PORT`, trusting `ca_file`.
fn client(port: u16, ca_file: Option<&Path>) -> GitlabCoordinator {
    let mut settings = CoordinatorSettings::new(
        format!("https://127.0.0.1:{port}"),
        Secret::new("glrt-runner-token-x"),
    );
    settings.trace_watch_token = Some(Secret::new("trace-watch-token"));
    settings.tls_ca_file = ca_file.map(Path::to_path_buf);
    GitlabCoordinator::new(settings).expect("client")
}

fn job() -> Job {
    Job {
        id: 42,
        token: Secret::new("job-token"),
        project_id: Some(7),
        payload: Arc::new(serde_json::json!({"id": 42})),
    }
}

#[test]
fn the_coordinator_and_the_trace_watch_trust_a_runner_sections_private_ca() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = private_ca(dir.path(), "ca.pem");
    let server = TlsServer::start(&ca);
    let system = heptapod_paas_runner::runtime::system().expect("runtime");
    let (polled, traced, untrusted) = system.block_on(async {
        let trusting = client(server.port, Some(&ca.ca_file));
        let polled = trusting.request_job(PollKind::Short).await;
        let traced = trusting.trace_len(&job()).await;
        let untrusted = client(server.port, None).request_job(PollKind::Short).await;
        (polled, traced, untrusted)
    });
    assert!(matches!(polled, Ok(None)), "job request: {polled:?}");
    assert_eq!(traced.as_ref().ok(), Some(&5), "trace read: {traced:?}");
    assert!(untrusted.is_err(), "without the CA file: {untrusted:?}");
    let heads = server.heads();
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("POST /api/v4/jobs/request")),
        "{heads:?}"
    );
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("GET /api/v4/projects/7/jobs/42/trace")
                && h.to_ascii_lowercase()
                    .contains("private-token: trace-watch-token")),
        "{heads:?}"
    );
    // The server sees the refused handshake a moment after the client.
    assert!(
        wait_until(
            || server.handshake_failures() == 1,
            Duration::from_secs(5),
            STEP
        ),
        "the client without the CA did not refuse the server: {} failed handshakes",
        server.handshake_failures()
    );
}

#[test]
fn one_tls_context_per_ca_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let a = private_ca(dir.path(), "a.pem");
    let b = private_ca(dir.path(), "b.pem");
    let a1 = tls_with_ca_file(&a.ca_file).expect("a loads");
    let a2 = tls_with_ca_file(&a.ca_file).expect("a again");
    let b1 = tls_with_ca_file(&b.ca_file).expect("b loads");
    assert!(
        std::ptr::eq(a1.context(), a2.context()),
        "one context for one file"
    );
    assert!(!std::ptr::eq(a1.context(), b1.context()), "one per file");
    let shared = heptapod_paas_runner::http_client::shared_tls().expect("system context");
    assert!(!std::ptr::eq(a1.context(), shared.context()));
}

#[test]
fn check_and_run_load_the_ca_file_of_each_section() {
    let e = E2e::start(WorldConfig::default());
    let config = e.write_config(crate::common::options(), &[]);
    let text = std::fs::read_to_string(&config).expect("read config");
    let ca = private_ca(e.dir.path(), "ca.pem");
    let garbage = e.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    for (file, expected) in [(&ca.ca_file, 0), (&garbage, 2)] {
        let with_ca = text.replacen(
            "[[runners]]\n",
            &format!(
                "[[runners]]\ntls-ca-file = {:?}\n",
                file.display().to_string()
            ),
            1,
        );
        assert_ne!(with_ca, text, "test set-up: a [[runners]] section");
        std::fs::write(&config, with_ca).expect("write config");
        for args in [
            &[OsStr::new("check"), config.as_os_str()][..],
            &[
                OsStr::new("run"),
                OsStr::new("--local-checks-only"),
                config.as_os_str(),
            ][..],
        ] {
            let (code, stdout, stderr) = run_to_end(args, Duration::from_secs(20));
            assert_eq!(code, Some(expected), "{args:?}: {stdout}{stderr}");
            if expected != 0 {
                let told = format!("{stdout}{stderr}");
                assert!(
                    told.contains("`runners[0].tls-ca-file`")
                        && told.contains("no PEM certificate"),
                    "{told}"
                );
            }
        }
    }
}
