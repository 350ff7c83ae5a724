// Sync and the API allocate many short-lived strings and JSON values; mimalloc spends about
// half the time glibc's allocator does on them (see the sync benchmark).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    provost::util::memory::tune_allocator();
    provost::cli::main()
}
