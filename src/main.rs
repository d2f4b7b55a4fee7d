use std::process::ExitCode;

mod allocator;

/// serc allocates per AST node and per instruction: with glibc's malloc a
/// native run spent ~15% of its instructions allocating (callgrind, 67
/// stdlib files: 591M instructions with glibc, 505M with mimalloc).
#[global_allocator]
static ALLOCATOR: allocator::Mimalloc = allocator::Mimalloc;

fn main() -> ExitCode {
    precompyle::run::main()
}
