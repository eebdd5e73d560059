//! SQLite's statement deadline, the counterpart of PostgreSQL's `statement_timeout`: a
//! statement running longer than the server's request deadline is interrupted, so work nobody
//! awaits any more (its request was answered TIMEOUT) does not go on holding a connection.
//!
//! SQLite has no timeout of its own; it calls a progress handler every few thousand virtual
//! machine steps, and a handler answering "stop" interrupts the statement. The handler must
//! know when the statement began: `sqlite3_trace_v2`'s statement event says so, once per
//! statement run (a cursor's later rows do not reset it). sqlx sets progress handlers but
//! offers no trace hook, hence this FFI.

#![allow(unsafe_code)]

use libsqlite3_sys as sqlite;
use sea_orm::sqlx::sqlite::SqliteConnection;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Virtual machine steps between two looks at the clock: well under a millisecond of work,
/// and short statements never reach it.
const STEPS_BETWEEN_CHECKS: i32 = 10_000;

fn micros_since_start() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The trace callback: a statement starts (its clock is set), or the connection closes (the
/// clock's reference held by SQLite is released).
unsafe extern "C" fn on_trace(event: c_uint, context: *mut c_void, _: *mut c_void, _: *mut c_void) -> c_int {
    let clock = context as *const AtomicU64;
    match event {
        // SAFETY: `context` is the `Arc` given to SQLite in `install`, alive until the close event.
        sqlite::SQLITE_TRACE_STMT => unsafe { (*clock).store(micros_since_start(), Ordering::Relaxed) },
        // SAFETY: the close event comes once, last; it takes back the reference `install` gave.
        sqlite::SQLITE_TRACE_CLOSE => drop(unsafe { Arc::from_raw(clock) }),
        _ => {}
    }
    0
}

/// Interrupts, from now on, every statement of `connection` that runs longer than `limit`. The
/// statement fails with SQLite's "interrupted" (code 9), which [`super::is_past_deadline`]
/// recognises.
pub async fn install(connection: &mut SqliteConnection, limit: Duration) -> Result<(), sea_orm::sqlx::Error> {
    let clock = Arc::new(AtomicU64::new(micros_since_start()));
    let mut handle = connection.lock_handle().await?;
    let context = Arc::into_raw(clock.clone()) as *mut c_void;
    // SAFETY: the handle is locked away from sqlx's worker thread while we hold it; `context`
    // stays valid until SQLite's close event releases it.
    let code = unsafe {
        sqlite::sqlite3_trace_v2(
            handle.as_raw_handle().as_ptr(),
            sqlite::SQLITE_TRACE_STMT | sqlite::SQLITE_TRACE_CLOSE,
            Some(on_trace),
            context,
        )
    };
    if code != sqlite::SQLITE_OK {
        // SAFETY: SQLite refused the callback, so the reference is still ours.
        drop(unsafe { Arc::from_raw(context as *const AtomicU64) });
        return Err(sea_orm::sqlx::Error::Protocol(format!(
            "could not trace statements (SQLite code {code})"
        )));
    }
    let limit = limit.as_micros() as u64;
    handle.set_progress_handler(STEPS_BETWEEN_CHECKS, move || {
        micros_since_start().saturating_sub(clock.load(Ordering::Relaxed)) < limit
    });
    Ok(())
}
