//! `heptapod-paas-runner` command (wired up by the service issue).

fn main() {
    eprintln!(
        "heptapod-paas-runner {}: the service is not assembled yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(1);
}
