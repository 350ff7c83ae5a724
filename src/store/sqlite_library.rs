//! Process-wide settings of the SQLite library that sqlx bundles, made once before the process
//! opens its first connection:
//!
//! - no memory statistics: with them on, every allocation SQLite makes takes one process-wide
//!   mutex, and with a pool of connections (each on its own thread) that mutex was the most
//!   contended lock of SCIM reads, a third of their CPU in futex waits and wake-ups;
//! - mimalloc (Provost's allocator) as SQLite's allocator instead of the C library's: sqlx
//!   copies every value it reads into its own SQLite allocation, which the reading task frees
//!   on another thread, and glibc's malloc and free of those were a fifth of a report's CPU.

use std::ffi::{c_int, c_void};

use libsqlite3_sys as ffi;

unsafe extern "C" fn malloc(size: c_int) -> *mut c_void {
    // SAFETY: mi_malloc takes any size; SQLite never asks for a negative one.
    unsafe { libmimalloc_sys::mi_malloc(usize::try_from(size).unwrap_or(0)) }
}

unsafe extern "C" fn free(pointer: *mut c_void) {
    // SAFETY: SQLite frees only what `malloc` or `realloc` gave it (or null).
    unsafe { libmimalloc_sys::mi_free(pointer) }
}

unsafe extern "C" fn realloc(pointer: *mut c_void, size: c_int) -> *mut c_void {
    // SAFETY: as for `free`; the size is non-negative.
    unsafe { libmimalloc_sys::mi_realloc(pointer, usize::try_from(size).unwrap_or(0)) }
}

unsafe extern "C" fn size(pointer: *mut c_void) -> c_int {
    // SAFETY: SQLite asks only about live allocations of `malloc` or `realloc`.
    let usable = unsafe { libmimalloc_sys::mi_usable_size(pointer) };
    c_int::try_from(usable).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn roundup(size: c_int) -> c_int {
    // SQLite needs 8-byte multiples; mimalloc's own size classes are coarser still.
    (size + 7) & !7
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn shutdown(_: *mut c_void) {}

/// Applies the settings, once per process. When SQLite was initialised already (something else
/// in the process opened a database first), it refuses them with SQLITE_MISUSE and runs with its
/// defaults, which only costs speed.
pub fn configure() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let methods = ffi::sqlite3_mem_methods {
            xMalloc: Some(malloc),
            xFree: Some(free),
            xRealloc: Some(realloc),
            xSize: Some(size),
            xRoundup: Some(roundup),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: sqlite3_config may only run before SQLite is initialised and while no other
        // thread uses SQLite: this runs before the process's first connection (every store
        // connection is opened after it). SQLite copies `methods` before returning.
        let codes = unsafe {
            [
                ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, c_int::from(0u8)),
                ffi::sqlite3_config(
                    ffi::SQLITE_CONFIG_MALLOC,
                    &methods as *const ffi::sqlite3_mem_methods,
                ),
            ]
        };
        if codes.iter().any(|&code| code != ffi::SQLITE_OK) {
            tracing::debug!(
                ?codes,
                "SQLite was initialised already; it keeps its default allocator"
            );
        }
    });
}
