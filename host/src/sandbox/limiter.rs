/// Caps an instance's linear memory and tables, remembering whether a growth was refused so
/// that the trap that usually follows can be reported as "memory limit exceeded".
#[derive(Debug, Clone)]
pub struct Limiter {
    memory_bytes: usize,
    table_elements: usize,
    /// Set when a memory growth was refused.
    pub memory_denied: bool,
    /// Set when a table growth was refused.
    pub table_denied: bool,
}

impl Limiter {
    /// A limiter with the given caps.
    pub fn new(memory_bytes: usize, table_elements: usize) -> Self {
        Self {
            memory_bytes,
            table_elements,
            memory_denied: false,
            table_denied: false,
        }
    }

    /// Forget refusals (before a new call).
    pub fn reset(&mut self) {
        self.memory_denied = false;
        self.table_denied = false;
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.memory_bytes;
        if !ok {
            self.memory_denied = true;
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.table_elements;
        if !ok {
            self.table_denied = true;
        }
        Ok(ok)
    }
}
