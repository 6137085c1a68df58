fn main() -> std::process::ExitCode {
    multiprovider::cli::main()
}
