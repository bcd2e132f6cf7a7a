//! `paas-sim` command: serve the simulated world, or run the demo.

fn main() {
    eprintln!("paas-sim: not assembled yet");
    std::process::exit(1);
}
