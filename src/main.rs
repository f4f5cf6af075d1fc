//! `dbmazz` command-line entry point; everything lives in the library.

fn main() -> std::process::ExitCode {
    dbmazz::alloc::tune();
    dbmazz::cli::main()
}
