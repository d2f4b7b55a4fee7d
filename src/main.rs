use std::process::ExitCode;

fn main() -> ExitCode {
    precompyle::run::main()
}
