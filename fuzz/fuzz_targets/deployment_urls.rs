//! The deployment URL a Clever Cloud answer gives (`deployment.httpUrl`,
//! `RemoteUrl::parse`) and the URL libgit2 asks credentials for
//! (`same_origin`). The input is the deployment URL and the asking URL,
//! one a line. Checked: no panic; an accepted URL is `https`, `http` to a
//! loopback host, or `file` only where local paths are allowed; neither
//! form keeps the userinfo; the shown form keeps no query or fragment;
//! `same_origin` is symmetric.
#![no_main]

use heptapod_paas_runner::git::{is_loopback, same_origin, RemoteSchemes, RemoteUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (raw, asked) = text.split_once('\n').unwrap_or((&text, ""));
    for schemes in [RemoteSchemes::Network, RemoteSchemes::NetworkAndLocalPaths] {
        let Ok(parsed) = RemoteUrl::parse(raw, schemes) else {
            continue;
        };
        for form in [&parsed.connect, &parsed.display] {
            let url = url::Url::parse(form).expect("an accepted URL is written back parsable");
            assert!(
                url.username().is_empty() && url.password().is_none(),
                "{form}"
            );
            match url.scheme() {
                "https" => {}
                "http" => assert!(is_loopback(&url), "{form}"),
                "file" => assert_eq!(schemes, RemoteSchemes::NetworkAndLocalPaths),
                other => panic!("scheme {other} accepted: {form}"),
            }
        }
        let shown = url::Url::parse(&parsed.display).expect("parsable");
        assert!(shown.query().is_none() && shown.fragment().is_none());
    }
    assert_eq!(same_origin(raw, asked), same_origin(asked, raw));
});
