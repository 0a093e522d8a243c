//! The `cairn` command line: a thin shell over the `cairn` library.

mod cli;

/// Large blocks (a big state's hash table) on transparent huge pages: `cairn::alloc`.
#[global_allocator]
static ALLOC: cairn::alloc::HugePages = cairn::alloc::HugePages;

fn main() -> std::process::ExitCode {
    // Freed batch buffers stay for the next batch instead of being faulted in again.
    cairn::alloc::keep_freed_memory();
    cli::main()
}
