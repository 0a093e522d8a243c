//! The current scope of state calls: a stack of scoped-key prefixes (`cairn_codec::scoped`).
//! Entering a scope pushes its prefix, the guard pops it; with nothing entered, calls go to
//! the operator-wide scope. One buffer serves the whole stack, so entering a scope per event
//! allocates nothing once warm.

use std::cell::RefCell;

#[derive(Default)]
struct Stack {
    prefixes: String,
    marks: Vec<usize>,
}

thread_local! {
    static STACK: RefCell<Stack> = RefCell::new(Stack::default());
}

/// Leaves the scope it was returned for when dropped (see [`super::enter_key`]).
#[must_use = "the scope is left when the guard is dropped"]
pub struct ScopeGuard {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(mark) = s.marks.pop() {
                s.prefixes.truncate(mark);
            }
        });
    }
}

pub(crate) fn enter(scope: Option<&str>) -> ScopeGuard {
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        let mark = s.prefixes.len();
        s.marks.push(mark);
        cairn_codec::scoped::prefix_into(&mut s.prefixes, scope);
    });
    ScopeGuard {
        _not_send: std::marker::PhantomData,
    }
}

/// Forget every entered scope (an export call starts afresh).
pub(crate) fn reset() {
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        s.prefixes.clear();
        s.marks.clear();
    });
}

/// `f` with the current scope's prefix.
pub(crate) fn with_prefix<R>(f: impl FnOnce(&str) -> R) -> R {
    STACK.with(|s| {
        let s = s.borrow();
        match s.marks.last() {
            Some(&m) => f(&s.prefixes[m..]),
            None => f(cairn_codec::scoped::OPERATOR),
        }
    })
}

/// The scoped key of `key` in the current scope, written into `out` (cleared first).
pub(crate) fn scoped_into(out: &mut String, key: &str) {
    out.clear();
    with_prefix(|p| out.push_str(p));
    out.push_str(key);
}

/// The current scope: `Some(stream key)` or `None` (operator-wide).
pub(crate) fn current() -> Option<String> {
    with_prefix(|p| {
        cairn_codec::scoped::split(p)
            .ok()
            .and_then(|(s, _)| s.map(str::to_string))
    })
}
