//! The `secretsync` binary: everything happens in [`secretsync::main`].

fn main() -> std::process::ExitCode {
    secretsync::main()
}
