use std::process::ExitCode;

fn main() -> ExitCode {
    voxtur::cli::main()
}
