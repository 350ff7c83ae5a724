//! How soon the allocator gives freed memory back to the system.
//!
//! The `provost` binary allocates with mimalloc (v3), which by default keeps freed memory for
//! a second before giving it back. A sync frees a page's worth of JSON, rows and history many
//! times a second, so the process held about a quarter more memory than it used: the full sync
//! of the `large` org peaked at 242 to 272 MB. Given back after 100 ms it peaked at 212 MB (after
//! 10 ms, 186 to 198 MB, but about 5% slower), within noise of the same time (`cargo bench
//! --bench sync`; see docs/src/performance.md).

/// Milliseconds a freed, unused stretch of memory waits before it goes back to the system.
pub const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// mimalloc's `mi_option_purge_delay`, which the binding does not name: in `mi_option_e`
/// (mimalloc.h, v3) it comes just before `mi_option_use_numa_nodes`.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// Sets the allocator's purge delay to [`PURGE_DELAY_MS`], unless `MIMALLOC_PURGE_DELAY` in
/// the environment says otherwise. Call it first thing in `main`.
pub fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: setting an option is a plain store mimalloc allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_is_the_option_mimalloc_reads_from_its_environment_variable() {
        // The option's default in mimalloc v3 is 1000 ms; if the index named another option
        // (its neighbours default to 0 and 1), this would not hold.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) }, 1000);
        }
        tune_allocator();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) },
                PURGE_DELAY_MS
            );
        }
    }
}
