//! How the allocator takes memory from the system and gives it back.
//!
//! The `provost` binary allocates with mimalloc (v3), which by default keeps freed memory for
//! a second before giving it back. A sync frees a page's worth of JSON, rows and history many
//! times a second, so the process held about a quarter more memory than it used: the full sync
//! of the `large` org peaked at 242 to 272 MB. Given back after 100 ms it peaked at 212 MB (after
//! 10 ms, 186 to 198 MB, but about 5% slower), within noise of the same time (`cargo bench
//! --bench sync`; see docs/src/performance.md).
//!
//! mimalloc also asks Linux for transparent huge pages (`MADV_HUGEPAGE`) on the memory it
//! reserves. Each stretch given back and touched again then came back as a whole 2 MB page the
//! kernel zeroed first, and each counted whole in the resident memory however little of it was
//! used: zeroing pages was 7.7% of the samples of a sync bench run, and a full sync of `large`
//! peaked at 213 to 230 MB. With huge pages off for the process it peaked at 139 to 176 MB, in
//! the same time within the machine's noise.

/// Milliseconds a freed, unused stretch of memory waits before it goes back to the system.
pub const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// mimalloc's `mi_option_purge_delay`, which the binding does not name: in `mi_option_e`
/// (mimalloc.h, v3) it comes just before `mi_option_use_numa_nodes`.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = libmimalloc_sys::mi_option_use_numa_nodes - 1;

/// Sets the allocator's purge delay to [`PURGE_DELAY_MS`], unless `MIMALLOC_PURGE_DELAY` in
/// the environment says otherwise, and turns transparent huge pages off for the process
/// unless `MIMALLOC_ALLOW_THP` says otherwise (mimalloc reads it itself: 0 turns them off too).
/// Processes started afterwards inherit the setting (the sync bench's emulator and script).
/// Call it first thing in `main`.
pub fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: setting an option is a plain store mimalloc allows at any time.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    }
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        disable_huge_pages();
    }
}

/// Turns transparent huge pages off for this process: the kernel checks it at each page fault,
/// so it holds for memory mimalloc reserved (and advised) before `main` too. Where the kernel
/// refuses, memory is used as before.
#[cfg(target_os = "linux")]
fn disable_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes an integer and touches no memory of ours.
    // (Called before logging starts: a refusal is not reported.)
    let _ = unsafe {
        libc::prctl(
            libc::PR_SET_THP_DISABLE,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn disable_huge_pages() {}

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
        #[cfg(target_os = "linux")]
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            // SAFETY: PR_GET_THP_DISABLE reads a flag of the process.
            let disabled = unsafe {
                libc::prctl(
                    libc::PR_GET_THP_DISABLE,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                )
            };
            assert_eq!(disabled, 1, "transparent huge pages are off");
        }
    }
}
