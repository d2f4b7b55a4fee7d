//! The pipeline.
pub fn main() -> std::process::ExitCode {
    todo!()
}
