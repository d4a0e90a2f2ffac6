//! A scratch memory context for work done once per captured row, reset after each row so that a
//! bulk statement runs in constant memory.

use pgrx::pg_sys;

pub struct Scratch {
    context: pg_sys::MemoryContext,
    parent: pg_sys::MemoryContext,
}

impl Scratch {
    /// A child of the current memory context; it dies with it even if an error skips `delete`.
    pub fn new() -> Self {
        // SAFETY: creating a child of the current context has no other precondition.
        unsafe {
            let parent = pg_sys::CurrentMemoryContext;
            let context = pg_sys::AllocSetContextCreateInternal(
                parent,
                c"audit_trail row".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            );
            Scratch { context, parent }
        }
    }

    /// Runs `f` with the scratch context current. Whatever it allocates lives until `reset`.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: switching between two live contexts. If `f` raises an ERROR, abort processing
        // resets CurrentMemoryContext, so not switching back on that path is harmless.
        unsafe {
            pg_sys::CurrentMemoryContext = self.context;
            let result = f();
            pg_sys::CurrentMemoryContext = self.parent;
            result
        }
    }

    pub fn reset(&self) {
        // SAFETY: nothing allocated in the context is used after the row it was built for.
        unsafe { pg_sys::MemoryContextReset(self.context) }
    }

    pub fn delete(self) {
        // SAFETY: see reset; the context is not current (run() switched back).
        unsafe { pg_sys::MemoryContextDelete(self.context) }
    }
}
