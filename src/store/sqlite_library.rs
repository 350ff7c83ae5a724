//! Process-wide settings of the SQLite library that sqlx bundles, made once before the process
//! opens its first connection:
//!
//! - no memory statistics: with them on, every allocation SQLite makes takes one process-wide
//!   mutex, and with a pool of connections (each on its own thread) that mutex was the most
//!   contended lock of SCIM reads, a third of their CPU in futex waits and wake-ups;
//! - mimalloc (Provost's allocator) as SQLite's allocator instead of the C library's: sqlx
//!   copies every value it reads into its own SQLite allocation, which the reading task frees
//!   on another thread, and glibc's malloc and free of those were a fifth of a report's CPU;
//! - `lower()` on every connection lower-cases all of Unicode, as PostgreSQL's does, instead of
//!   only ASCII letters: SCIM's case-insensitive filters and sorting compare through it, and
//!   `displayName eq "ÉLODIE NOVÁK"` has to find Élodie Novák on both backends. The index on
//!   `lower(username)` is rebuilt with it by migration 0011.

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

/// `lower(X)`: X lower-cased by Unicode's rules (Rust's `str::to_lowercase`), NULL for NULL;
/// bytes that are not UTF-8 have their ASCII letters lower-cased, as SQLite's own does.
unsafe extern "C" fn lower(
    context: *mut ffi::sqlite3_context,
    _count: c_int,
    arguments: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite calls this with one argument (it is registered with one), valid for the
    // call; the text pointer and length it returns describe the value's UTF-8 encoding.
    unsafe {
        let value = *arguments;
        if ffi::sqlite3_value_type(value) == ffi::SQLITE_NULL {
            ffi::sqlite3_result_null(context);
            return;
        }
        let text = ffi::sqlite3_value_text(value);
        let length = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
        let bytes = if text.is_null() || length == 0 {
            &[][..]
        } else {
            std::slice::from_raw_parts(text, length)
        };
        let lowered = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_lowercase().into_bytes(),
            Err(_) => bytes.to_ascii_lowercase(),
        };
        ffi::sqlite3_result_text(
            context,
            lowered.as_ptr().cast(),
            c_int::try_from(lowered.len()).unwrap_or(c_int::MAX),
            ffi::SQLITE_TRANSIENT(),
        );
    }
}

/// Registers Provost's functions on a new connection (an automatic extension: SQLite calls it
/// for every connection it opens).
unsafe extern "C" fn register_functions(
    db: *mut ffi::sqlite3,
    _error: *mut *mut std::ffi::c_char,
    _api: *const ffi::sqlite3_api_routines,
) -> c_int {
    // SAFETY: `db` is the connection being opened; the name is a C string literal; `lower`
    // keeps no state, so it needs no application data or destructor.
    unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            c"lower".as_ptr(),
            1,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
            std::ptr::null_mut(),
            Some(lower),
            None,
            None,
            None,
        )
    }
}

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
        // SAFETY: registering an automatic extension is allowed at any time; the entry point
        // is a function of this program, alive for the whole process.
        let code = unsafe { ffi::sqlite3_auto_extension(Some(register_functions)) };
        assert_eq!(
            code,
            ffi::SQLITE_OK,
            "registering Provost's SQLite functions failed"
        );
    });
}
