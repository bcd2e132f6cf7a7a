//! The Git smart HTTP receive-pack protocol, client side, without I/O
//! (`src/git/push.rs` does the requests): the pkt-line framing, the
//! parsing of the server's reference advertisement
//! (`GET …/info/refs?service=git-receive-pack`) and of its status report
//! (the answer to `POST …/git-receive-pack`), and the request body of a
//! push creating one reference.
//!
//! Every parser is bounded (body size, line count, line length) and
//! answers an error, never a panic, on malformed input (public for the
//! fuzz target of `fuzz/`).

/// Most bytes read of an advertisement or a report.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Most references an advertisement may list.
pub const MAX_ADVERTISED_REFS: usize = 1000;

/// Longest reason kept from an `ng` or `unpack` line, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// The hexadecimal object id of nothing (a reference created, or the
/// placeholder of an empty repository's capabilities line).
pub const ZERO_ID: &str = "0000000000000000000000000000000000000000";

/// Why an answer could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The answer is larger than [`MAX_ANSWER_BYTES`] or lists more than
    /// [`MAX_ADVERTISED_REFS`] references.
    #[error("answer too large: {0}")]
    TooLarge(&'static str),
    /// The framing or the content is not what the protocol says.
    #[error("malformed answer: {0}")]
    Malformed(&'static str),
}

/// One pkt-line: data, or a flush (`0000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pkt<'a> {
    Flush,
    Data(&'a [u8]),
}

/// Reads the pkt-lines of a body in order.
struct PktReader<'a> {
    rest: &'a [u8],
}

impl<'a> PktReader<'a> {
    fn new(body: &'a [u8]) -> Result<Self, ProtocolError> {
        if body.len() > MAX_ANSWER_BYTES {
            return Err(ProtocolError::TooLarge("more bytes than allowed"));
        }
        Ok(PktReader { rest: body })
    }

    /// The next pkt-line; `None` at the end of the body.
    fn next(&mut self) -> Result<Option<Pkt<'a>>, ProtocolError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (head, rest) = self
            .rest
            .split_at_checked(4)
            .ok_or(ProtocolError::Malformed("truncated pkt-line length"))?;
        let mut len = 0usize;
        for &digit in head {
            let value = char::from(digit)
                .to_digit(16)
                .ok_or(ProtocolError::Malformed(
                    "pkt-line length is not hexadecimal",
                ))?;
            len = len * 16 + value as usize;
        }
        match len {
            0 => {
                self.rest = rest;
                Ok(Some(Pkt::Flush))
            }
            1..=3 => Err(ProtocolError::Malformed("invalid pkt-line length")),
            _ => {
                let (data, rest) = rest
                    .split_at_checked(len - 4)
                    .ok_or(ProtocolError::Malformed("pkt-line longer than the answer"))?;
                self.rest = rest;
                Ok(Some(Pkt::Data(data)))
            }
        }
    }

    /// The next pkt-line, which must exist.
    fn expect(&mut self, missing: &'static str) -> Result<Pkt<'a>, ProtocolError> {
        self.next()?.ok_or(ProtocolError::Malformed(missing))
    }
}

/// A pkt-line's data without its trailing newline.
fn chomp(data: &[u8]) -> &[u8] {
    data.strip_suffix(b"\n").unwrap_or(data)
}

/// True for 40 lowercase or uppercase hexadecimal digits.
fn is_object_id(text: &[u8]) -> bool {
    text.len() == ZERO_ID.len() && text.iter().all(u8::is_ascii_hexdigit)
}

/// What a receive-pack advertisement says, as far as a push creating
/// `refs/heads/master` cares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Advertisement {
    /// The id `target` points to on the server, if it exists.
    pub target: Option<String>,
    /// The server sends a status report when asked (`report-status`).
    pub report_status: bool,
    /// The server accepts an `agent=` capability.
    pub agent: bool,
}

/// Parses the answer to `GET …/info/refs?service=git-receive-pack`: the
/// `# service=git-receive-pack` line and a flush, then the references
/// (capabilities after a NUL on the first, or the `capabilities^{}` line
/// of an empty repository) and a flush. `target` is the reference looked
/// for (e.g. `refs/heads/master`).
pub fn parse_advertisement(body: &[u8], target: &str) -> Result<Advertisement, ProtocolError> {
    let mut reader = PktReader::new(body)?;
    match reader.expect("empty answer")? {
        Pkt::Data(line) if chomp(line) == b"# service=git-receive-pack" => {}
        _ => return Err(ProtocolError::Malformed("not a receive-pack advertisement")),
    }
    // git sends a flush after the service line; some servers do not.
    let mut pkt = reader.expect("no references")?;
    if pkt == Pkt::Flush {
        pkt = reader.expect("no references")?;
    }
    let mut advertisement = Advertisement::default();
    let mut first = true;
    let mut refs = 0usize;
    loop {
        let line = match pkt {
            Pkt::Flush => break,
            Pkt::Data(line) => chomp(line),
        };
        refs += 1;
        if refs > MAX_ADVERTISED_REFS {
            return Err(ProtocolError::TooLarge("too many references"));
        }
        let (reference, capabilities) = match line.iter().position(|&b| b == 0) {
            Some(nul) => (
                line.get(..nul).unwrap_or_default(),
                Some(line.get(nul + 1..).unwrap_or_default()),
            ),
            None => (line, None),
        };
        if let Some(capabilities) = capabilities {
            if !first {
                return Err(ProtocolError::Malformed(
                    "capabilities after the first line",
                ));
            }
            for capability in capabilities.split(|&b| b == b' ') {
                if capability == b"report-status" {
                    advertisement.report_status = true;
                } else if capability.starts_with(b"agent=") {
                    advertisement.agent = true;
                }
            }
        }
        let (id, name) = reference
            .iter()
            .position(|&b| b == b' ')
            .and_then(|space| Some((reference.get(..space)?, reference.get(space + 1..)?)))
            .ok_or(ProtocolError::Malformed("reference line without a name"))?;
        if !is_object_id(id) || name.is_empty() {
            return Err(ProtocolError::Malformed("invalid reference line"));
        }
        let empty_repository = first && name == b"capabilities^{}";
        if empty_repository && id != ZERO_ID.as_bytes() {
            return Err(ProtocolError::Malformed(
                "capabilities line with an object id",
            ));
        }
        if !empty_repository && name == target.as_bytes() {
            // Checked above: 40 ASCII hexadecimal digits.
            advertisement.target = Some(String::from_utf8_lossy(id).to_ascii_lowercase());
        }
        first = false;
        pkt = reader.expect("references not ended by a flush")?;
    }
    if first {
        return Err(ProtocolError::Malformed(
            "no references and no capabilities",
        ));
    }
    Ok(advertisement)
}

/// The request body of a push creating `target` at `commit` with `pack`:
/// one command (capabilities `report-status` and `agent` when
/// advertised), a flush, the pack.
pub fn receive_pack_request(
    target: &str,
    commit: &str,
    advertisement: &Advertisement,
    agent: &str,
    pack: &[u8],
) -> Vec<u8> {
    let mut capabilities = Vec::new();
    if advertisement.report_status {
        capabilities.push("report-status".to_owned());
    }
    if advertisement.agent {
        capabilities.push(format!("agent={agent}"));
    }
    let command = format!("{ZERO_ID} {commit} {target}\0{}\n", capabilities.join(" "));
    let mut body = Vec::with_capacity(command.len() + 8 + pack.len());
    body.extend_from_slice(format!("{:04x}", command.len() + 4).as_bytes());
    body.extend_from_slice(command.as_bytes());
    body.extend_from_slice(b"0000");
    body.extend_from_slice(pack);
    body
}

/// What the server's status report says about a push of `target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// Unpacked, and `target` updated.
    Updated,
    /// Not done: the server's reason (the unpack's, or the reference's),
    /// bounded to [`MAX_REASON_CHARS`] characters, control characters
    /// escaped.
    Refused(String),
}

/// Parses a `report-status` answer: `unpack ok` (or `unpack <error>`),
/// then `ok <ref>` or `ng <ref> <reason>` per command, then a flush.
pub fn parse_report(body: &[u8], target: &str) -> Result<Report, ProtocolError> {
    let mut reader = PktReader::new(body)?;
    let unpack = match reader.expect("empty report")? {
        Pkt::Data(line) => chomp(line),
        Pkt::Flush => return Err(ProtocolError::Malformed("empty report")),
    };
    let unpack_status = unpack
        .strip_prefix(b"unpack ")
        .ok_or(ProtocolError::Malformed("report without an unpack status"))?;
    if unpack_status != b"ok" {
        return Ok(Report::Refused(format!(
            "unpack failed: {}",
            bounded_text(unpack_status)
        )));
    }
    let mut outcome = None;
    let mut lines = 0usize;
    loop {
        let line = match reader.expect("report not ended by a flush")? {
            Pkt::Flush => break,
            Pkt::Data(line) => chomp(line),
        };
        lines += 1;
        if lines > MAX_ADVERTISED_REFS {
            return Err(ProtocolError::TooLarge("too many report lines"));
        }
        if let Some(name) = line.strip_prefix(b"ok ") {
            if name == target.as_bytes() {
                outcome.get_or_insert(Report::Updated);
            }
        } else if let Some(rest) = line.strip_prefix(b"ng ") {
            let (name, reason) = match rest.iter().position(|&b| b == b' ') {
                Some(space) => (
                    rest.get(..space).unwrap_or_default(),
                    rest.get(space + 1..).unwrap_or_default(),
                ),
                None => (rest, &b""[..]),
            };
            if name == target.as_bytes() {
                outcome = Some(Report::Refused(format!(
                    "{target}: {}",
                    bounded_text(reason)
                )));
            }
        } else {
            return Err(ProtocolError::Malformed("report line neither ok nor ng"));
        }
    }
    outcome.ok_or(ProtocolError::Malformed(
        "no status for the pushed reference",
    ))
}

/// Server text made safe to show: lossy UTF-8, control characters
/// escaped, at most [`MAX_REASON_CHARS`] characters (escapes included)
/// and an ellipsis.
fn bounded_text(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut shown = 0usize;
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.to_string()
        };
        shown += piece.chars().count();
        if shown > MAX_REASON_CHARS {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = "refs/heads/master";
    const ID: &str = "9a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";

    /// `text` framed as one pkt-line.
    fn pkt(text: &str) -> String {
        format!("{:04x}{text}", text.len() + 4)
    }

    fn advertisement(refs: &[&str]) -> Vec<u8> {
        let mut body = pkt("# service=git-receive-pack\n") + "0000";
        for line in refs {
            body += &pkt(line);
        }
        body += "0000";
        body.into_bytes()
    }

    #[test]
    fn an_empty_repository_has_no_target() {
        let body = advertisement(&[&format!(
            "{ZERO_ID} capabilities^{{}}\0report-status delete-refs ofs-delta agent=git/2.43\n"
        )]);
        assert_eq!(
            parse_advertisement(&body, TARGET),
            Ok(Advertisement {
                target: None,
                report_status: true,
                agent: true,
            })
        );
    }

    #[test]
    fn master_is_found_among_other_references() {
        let body = advertisement(&[
            &format!("{ID} refs/heads/main\0report-status\n"),
            &format!("{ID} refs/tags/master\n"),
            &format!("{} {TARGET}\n", ID.to_ascii_uppercase()),
        ]);
        let parsed = parse_advertisement(&body, TARGET).expect("valid");
        assert_eq!(parsed.target.as_deref(), Some(ID));
        assert!(parsed.report_status);
        assert!(!parsed.agent);
        let without = advertisement(&[&format!("{ID} refs/heads/main\0\n")]);
        let parsed = parse_advertisement(&without, TARGET).expect("valid");
        assert_eq!(parsed.target, None);
        assert!(!parsed.report_status);
    }

    #[test]
    fn the_flush_after_the_service_line_is_optional() {
        let body = pkt("# service=git-receive-pack\n")
            + &pkt(&format!("{ZERO_ID} capabilities^{{}}\0report-status\n"))
            + "0000";
        assert!(parse_advertisement(body.as_bytes(), TARGET).is_ok());
    }

    #[test]
    fn malformed_advertisements_are_errors() {
        let service = pkt("# service=git-receive-pack\n") + "0000";
        let valid_ref = pkt(&format!("{ID} {TARGET}\0report-status\n"));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("html", b"<html>hello</html>".to_vec()),
            (
                "upload-pack",
                (pkt("# service=git-upload-pack\n") + "0000").into_bytes(),
            ),
            ("no refs", service.clone().into_bytes()),
            ("no refs, flushed", format!("{service}0000").into_bytes()),
            ("not hex", format!("{service}00zz").into_bytes()),
            ("length 3", format!("{service}0003").into_bytes()),
            ("truncated length", format!("{service}00").into_bytes()),
            (
                "length past the end",
                format!("{service}0fff{ID}").into_bytes(),
            ),
            (
                "no final flush",
                format!("{service}{valid_ref}").into_bytes(),
            ),
            (
                "short id",
                format!("{service}{}0000", pkt("abc refs/heads/x\n")).into_bytes(),
            ),
            (
                "no name",
                format!("{service}{}0000", pkt(&format!("{ID}\n"))).into_bytes(),
            ),
            (
                "caps twice",
                format!("{service}{valid_ref}{valid_ref}0000").into_bytes(),
            ),
            (
                "capabilities^{} with an id",
                format!(
                    "{service}{}0000",
                    pkt(&format!("{ID} capabilities^{{}}\0report-status\n"))
                )
                .into_bytes(),
            ),
        ];
        for (name, body) in cases {
            let result = parse_advertisement(&body, TARGET);
            assert!(
                matches!(result, Err(ProtocolError::Malformed(_))),
                "{name}: {result:?}"
            );
        }
    }

    #[test]
    fn oversized_advertisements_are_errors() {
        let line = pkt(&format!("{ID} refs/heads/b\n"));
        let many: Vec<String> = (0..=MAX_ADVERTISED_REFS).map(|_| line.clone()).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let mut body = pkt("# service=git-receive-pack\n") + "0000";
        for r in &refs {
            body += r;
        }
        body += "0000";
        assert!(body.len() <= MAX_ANSWER_BYTES);
        assert_eq!(
            parse_advertisement(body.as_bytes(), TARGET),
            Err(ProtocolError::TooLarge("too many references"))
        );
        let huge = vec![b'0'; MAX_ANSWER_BYTES + 1];
        assert!(matches!(
            parse_advertisement(&huge, TARGET),
            Err(ProtocolError::TooLarge(_))
        ));
    }

    #[test]
    fn the_request_names_only_advertised_capabilities() {
        let all = Advertisement {
            target: None,
            report_status: true,
            agent: true,
        };
        let body = receive_pack_request(TARGET, ID, &all, "runner/1", b"PACK");
        let expected_command = format!("{ZERO_ID} {ID} {TARGET}\0report-status agent=runner/1\n");
        let expected = format!("{}0000PACK", pkt(&expected_command));
        assert_eq!(body, expected.as_bytes());
        let none = Advertisement::default();
        let body = receive_pack_request(TARGET, ID, &none, "runner/1", b"PACK");
        let expected = format!("{}0000PACK", pkt(&format!("{ZERO_ID} {ID} {TARGET}\0\n")));
        assert_eq!(body, expected.as_bytes());
    }

    #[test]
    fn reports_say_updated_or_refused() {
        let ok = pkt("unpack ok\n") + &pkt(&format!("ok {TARGET}\n")) + "0000";
        assert_eq!(parse_report(ok.as_bytes(), TARGET), Ok(Report::Updated));

        let ng =
            pkt("unpack ok\n") + &pkt(&format!("ng {TARGET} pre-receive hook declined\n")) + "0000";
        assert_eq!(
            parse_report(ng.as_bytes(), TARGET),
            Ok(Report::Refused(format!(
                "{TARGET}: pre-receive hook declined"
            )))
        );

        let unpack = pkt("unpack index-pack abnormal exit\n")
            + &pkt(&format!("ng {TARGET} unpacker error\n"))
            + "0000";
        assert_eq!(
            parse_report(unpack.as_bytes(), TARGET),
            Ok(Report::Refused(
                "unpack failed: index-pack abnormal exit".into()
            ))
        );
    }

    #[test]
    fn refusal_reasons_are_bounded_and_escaped() {
        let reason = format!("bad\x1b[31m\r\nline {}", "x".repeat(1000));
        let ng = pkt("unpack ok\n") + &pkt(&format!("ng {TARGET} {reason}\n")) + "0000";
        let Ok(Report::Refused(shown)) = parse_report(ng.as_bytes(), TARGET) else {
            panic!("refused expected");
        };
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("bad\\u{1b}[31m\\r\\nline"), "{shown:?}");
        assert!(shown.chars().count() <= TARGET.len() + 2 + MAX_REASON_CHARS + 1);
    }

    #[test]
    fn malformed_reports_are_errors() {
        let cases = [
            String::new(),
            "0000".into(),
            pkt("unpack ok\n"),
            pkt("hello\n") + "0000",
            pkt("unpack ok\n") + &pkt("what refs/heads/master\n") + "0000",
            pkt("unpack ok\n") + &pkt("ok refs/heads/other\n") + "0000",
            pkt("unpack ok\n") + "00",
            pkt("unpack ok\n") + "0002",
        ];
        for body in cases {
            let result = parse_report(body.as_bytes(), TARGET);
            assert!(
                matches!(result, Err(ProtocolError::Malformed(_))),
                "{body:?}: {result:?}"
            );
        }
        let huge = vec![b'0'; MAX_ANSWER_BYTES + 1];
        assert!(matches!(
            parse_report(&huge, TARGET),
            Err(ProtocolError::TooLarge(_))
        ));
    }
}
