//! The `cvm` binary: see the `cvm_launcher` crate.

fn main() -> std::process::ExitCode {
    cvm_launcher::cli::main()
}
