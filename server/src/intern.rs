//! Paths the server answered successfully, interned for the life of the process, so an event can
//! carry its path without a heap string of its own.
//!
//! Why: an event outlives its request and is freed on the recorder's thread, in a batch. Each
//! path string freed there went back to the serving thread's allocator arena, whose next large
//! allocation then had to consolidate thousands of small chunks (a visible share of the server's
//! CPU under load, in `perf`). A site serves a bounded set of paths successfully, so those are
//! kept once; anything else (a long path, a full table) keeps its own string, as before.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

type Set = HashSet<&'static str, foldhash::fast::RandomState>;

/// At most this many paths are ever interned (and never freed): with `MAX_LEN`, at most 1 MiB.
const MAX_PATHS: usize = 4096;
/// Longer paths are not interned (query strings under `--keep-query`, probes).
const MAX_LEN: usize = 256;

static GLOBAL: LazyLock<Mutex<Set>> = LazyLock::new(Mutex::default);

thread_local! {
    /// This thread's view of `GLOBAL`: lookups on the request path take no lock.
    static LOCAL: RefCell<Set> = RefCell::default();
}

/// `path` as an interned string, or as itself when it cannot be interned.
pub fn path(path: String) -> Cow<'static, str> {
    if path.len() > MAX_LEN {
        return Cow::Owned(path);
    }
    if let Some(s) = LOCAL.with(|l| l.borrow().get(path.as_str()).copied()) {
        return Cow::Borrowed(s);
    }
    let s = {
        let mut global = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
        match global.get(path.as_str()) {
            Some(s) => *s,
            None if global.len() >= MAX_PATHS => return Cow::Owned(path),
            None => {
                // Deliberately leaked: bounded by MAX_PATHS × MAX_LEN, kept until exit.
                let s: &'static str = Box::leak(path.into_boxed_str());
                global.insert(s);
                s
            }
        }
    };
    LOCAL.with(|l| l.borrow_mut().insert(s));
    Cow::Borrowed(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_interned_once_and_shared_across_threads() {
        let a = path("/intern-test/a.css".to_string());
        let b = std::thread::spawn(|| path("/intern-test/a.css".to_string()))
            .join()
            .unwrap();
        let (Cow::Borrowed(a), Cow::Borrowed(b)) = (a, b) else {
            panic!("not interned")
        };
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "/intern-test/a.css");
    }

    #[test]
    fn long_paths_keep_their_own_string() {
        let long = format!("/{}", "x".repeat(MAX_LEN));
        assert!(matches!(path(long.clone()), Cow::Owned(p) if p == long));
    }
}
