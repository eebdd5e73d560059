//! SQLite's heap, handed to mimalloc (the server's own allocator), without SQLite's memory
//! statistics.
//!
//! SQLite allocates through the C library's `malloc` unless told otherwise, and by default it
//! counts every allocation under one process-wide mutex. On the ingestion path, glibc's
//! `malloc`/`free` and those mutexes were about a seventh of the SQLite writer's time
//! (docs/perf-history.md, twelfth session). SQLite takes its allocator through `sqlite3_config`, before
//! its first connection; no crate does this, hence these few lines of FFI.

#![allow(unsafe_code)]

use libmimalloc_sys as mi;
use libsqlite3_sys as sqlite;
use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

unsafe extern "C" fn allocate(size: c_int) -> *mut c_void {
    // SQLite never asks for a negative size; a zero-size request still gets a unique pointer.
    unsafe { mi::mi_malloc(size.max(0) as usize) }
}

unsafe extern "C" fn free(pointer: *mut c_void) {
    unsafe { mi::mi_free(pointer) }
}

unsafe extern "C" fn reallocate(pointer: *mut c_void, size: c_int) -> *mut c_void {
    unsafe { mi::mi_realloc(pointer, size.max(0) as usize) }
}

unsafe extern "C" fn usable_size(pointer: *mut c_void) -> c_int {
    // SQLite's allocations stay far below 2 GiB (its own limit is SQLITE_MAX_ALLOCATION_SIZE).
    unsafe { mi::mi_usable_size(pointer) }.min(c_int::MAX as usize) as c_int
}

unsafe extern "C" fn round_up(size: c_int) -> c_int {
    unsafe { mi::mi_good_size(size.max(0) as usize) }.min(c_int::MAX as usize) as c_int
}

unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    sqlite::SQLITE_OK
}

unsafe extern "C" fn shutdown(_: *mut c_void) {}

/// Whether SQLite's heap is mimalloc's in this process (false before `configure`, or when
/// SQLite was initialised before it ran).
pub fn configured() -> bool {
    *CONFIGURED.get().unwrap_or(&false)
}

static CONFIGURED: OnceLock<bool> = OnceLock::new();

/// Configures SQLite's heap once per process, before any connection opens. A process that
/// already initialised SQLite some other way keeps SQLite's defaults (and says so).
pub fn configure() {
    CONFIGURED.get_or_init(|| {
        let methods = sqlite::sqlite3_mem_methods {
            xMalloc: Some(allocate),
            xFree: Some(free),
            xRealloc: Some(reallocate),
            xSize: Some(usable_size),
            xRoundup: Some(round_up),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            pAppData: std::ptr::null_mut(),
        };
        // SQLite copies the methods; both calls only fail once SQLite is initialised.
        let codes = unsafe {
            [
                sqlite::sqlite3_config(
                    sqlite::SQLITE_CONFIG_MALLOC,
                    &methods as *const sqlite::sqlite3_mem_methods,
                ),
                sqlite::sqlite3_config(sqlite::SQLITE_CONFIG_MEMSTATUS, 0 as c_int),
            ]
        };
        let configured = codes.iter().all(|code| *code == sqlite::SQLITE_OK);
        if !configured {
            tracing::warn!(
                ?codes,
                "SQLite was initialised before its heap could be configured; it keeps the C library's"
            );
        }
        configured
    });
}
