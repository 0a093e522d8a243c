//! The current scope of state calls: a stack of entered scopes (a stream key, or the
//! operator-wide scope). Entering a scope pushes it, the guard pops it; with nothing entered,
//! calls go to the operator-wide scope. One buffer holds the stack's stream keys, so entering
//! a scope per event allocates nothing once warm, and nothing is composed or hashed here: the
//! backends take (scope, key) as they are.

use std::cell::RefCell;

#[derive(Default)]
struct Stack {
    /// The entered stream keys, one after the other.
    keys: String,
    /// Per entered scope: where its key starts in `keys`, whether it is keyed, and its frame.
    marks: Vec<(usize, bool, u64)>,
    /// The frame number of the next scope entered.
    next_frame: u64,
}

/// The current scope as the backends see it: the stream key (`None`: operator-wide) and the
/// number of the frame that entered it (0: nothing entered). Frame numbers are never reused,
/// so a backend may remember what it worked out for a frame (the wasm cache remembers the
/// scope's slot).
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a> {
    pub scope: Option<&'a str>,
    /// Read by the wasm backend only.
    #[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
    pub frame: u64,
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
            if let Some((start, _, _)) = s.marks.pop() {
                s.keys.truncate(start);
            }
        });
    }
}

pub(crate) fn enter(scope: Option<&str>) -> ScopeGuard {
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        let start = s.keys.len();
        s.next_frame += 1;
        let frame = s.next_frame;
        s.marks.push((start, scope.is_some(), frame));
        if let Some(k) = scope {
            s.keys.push_str(k);
        }
    });
    ScopeGuard {
        _not_send: std::marker::PhantomData,
    }
}

/// Forget every entered scope (an export call starts afresh).
pub(crate) fn reset() {
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        s.keys.clear();
        s.marks.clear();
    });
}

/// `f` with the current scope. `f` must not enter or leave a scope (the stack is borrowed
/// meanwhile).
pub(crate) fn with_at<R>(f: impl FnOnce(At<'_>) -> R) -> R {
    STACK.with(|s| {
        let s = s.borrow();
        match s.marks.last() {
            Some(&(start, true, frame)) => f(At {
                scope: Some(&s.keys[start..]),
                frame,
            }),
            Some(&(_, false, frame)) => f(At { scope: None, frame }),
            None => f(At {
                scope: None,
                frame: 0,
            }),
        }
    })
}

/// `f` with the current scope: `Some(stream key)` or `None` (operator-wide).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    with_at(|at| f(at.scope))
}

/// The current scope, owned.
pub(crate) fn current() -> Option<String> {
    with_current(|s| s.map(str::to_string))
}
