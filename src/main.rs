fn main() -> std::process::ExitCode {
    provost::cli::main()
}
