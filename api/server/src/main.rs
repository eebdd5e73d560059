use std::process::ExitCode;

// mimalloc: under many threads glibc's malloc spent a quarter of ingestion CPU (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    voxtur::cli::main()
}
