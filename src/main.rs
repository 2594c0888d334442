//! The `airlock` command.

/// mimalloc instead of glibc malloc: the proxy allocates and frees many short-lived
/// buffers per request, where glibc's fastbin consolidation showed up at ~10% of CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    airlock::cli::main()
}
