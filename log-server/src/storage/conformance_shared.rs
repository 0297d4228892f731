//! Conformance of a store shared by several frontends (feature `testing`; spec
//! `spec/storage-postgres.md` §5.4): the request-id window of [`SharedLog`], checked through two
//! independent handles on one store (two frontends).
//!
//! [`request_ids`]: a reservation is seen by the other handle (in flight, then logged);
//! release deletes only its own reservation; the window keeps the newest ids; an in-flight id
//! older than the lease is taken over; and two handles racing on one id, many rounds: exactly
//! one reservation wins each round.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use verdict_core::merkle::LeafIndex;

use super::conformance::Failure;
use super::shared::{RequestIdClaim, RequestIdRow, SharedLog};
use super::Storage;

/// Rounds of the race of [`request_ids`].
pub const RACE_ROUNDS: u8 = 40;

struct Case {
    backend: &'static str,
}

impl Case {
    fn fail(&self, detail: impl Into<String>) -> Failure {
        Failure {
            backend: self.backend,
            case: "request_ids",
            detail: detail.into(),
        }
    }

    fn ensure(&self, ok: bool, detail: impl FnOnce() -> String) -> Result<(), Failure> {
        if ok {
            Ok(())
        } else {
            Err(self.fail(detail()))
        }
    }

    fn ok<T, E: std::fmt::Display>(&self, what: &str, result: Result<T, E>) -> Result<T, Failure> {
        result.map_err(|e| self.fail(format!("{what}: {e}")))
    }

    fn shared<'a>(&self, store: &'a dyn Storage) -> Result<&'a dyn SharedLog, Failure> {
        store
            .shared()
            .ok_or_else(|| self.fail("the store is not shared (Storage::shared is None)"))
    }
}

fn claim<'a>(
    key: &'a [u8; 32],
    fingerprint: &'a [u8; 32],
    token: &'a [u8; 16],
    window: u64,
    lease: Duration,
) -> RequestIdClaim<'a> {
    RequestIdClaim {
        key,
        fingerprint,
        token,
        window,
        lease,
    }
}

const LONG: Duration = Duration::from_secs(3600);

/// The request-id window through two handles `a` and `b` on one store (see the module docs).
///
/// # Errors
/// [`Failure`].
pub fn request_ids(
    backend: &'static str,
    a: Arc<dyn Storage>,
    b: Arc<dyn Storage>,
) -> Result<(), Failure> {
    let c = Case { backend };
    let (sa, sb) = (c.shared(a.as_ref())?, c.shared(b.as_ref())?);
    let (k1, f1, f2) = ([1u8; 32], [0xf1u8; 32], [0xf2u8; 32]);
    let (t1, t2) = ([1u8; 16], [2u8; 16]);

    // Reserved on a: b sees it in flight, then logged.
    let won = c.ok(
        "reserve",
        sa.reserve_request_id(&claim(&k1, &f1, &t1, 100, LONG)),
    )?;
    c.ensure(won.is_none(), || {
        format!("a fresh id was not reserved: {won:?}")
    })?;
    let in_flight = RequestIdRow {
        fingerprint: f1,
        logged: None,
    };
    let seen = c.ok(
        "reserve",
        sb.reserve_request_id(&claim(&k1, &f2, &t2, 100, LONG)),
    )?;
    c.ensure(seen.as_ref() == Some(&in_flight), || {
        format!("the other handle reserved an id in flight: {seen:?}")
    })?;
    c.ok("release other", sb.release_request_id(&k1, &t2))?;
    let read = c.ok("read", sb.request_id(&k1))?;
    c.ensure(read.as_ref() == Some(&in_flight), || {
        format!("a release with another token changed the row: {read:?}")
    })?;
    c.ok(
        "complete",
        sa.complete_request_id(&k1, LeafIndex(7), &[9; 32]),
    )?;
    let logged = RequestIdRow {
        fingerprint: f1,
        logged: Some((LeafIndex(7), [9; 32])),
    };
    let seen = c.ok(
        "reserve",
        sb.reserve_request_id(&claim(&k1, &f1, &t2, 100, LONG)),
    )?;
    c.ensure(seen.as_ref() == Some(&logged), || {
        format!("a logged id was not shown to the other handle: {seen:?}")
    })?;
    // A logged id is never released nor taken over.
    c.ok("release logged", sa.release_request_id(&k1, &t1))?;
    let seen = c.ok(
        "reserve",
        sb.reserve_request_id(&claim(&k1, &f1, &t2, 100, Duration::ZERO)),
    )?;
    c.ensure(seen.as_ref() == Some(&logged), || {
        format!("a logged id was released or taken over: {seen:?}")
    })?;

    // Released by its reservation: free again, on the other handle.
    let k2 = [2u8; 32];
    let won = c.ok(
        "reserve",
        sa.reserve_request_id(&claim(&k2, &f1, &t1, 100, LONG)),
    )?;
    c.ensure(won.is_none(), || "a fresh id was not reserved".into())?;
    c.ok("release", sa.release_request_id(&k2, &t1))?;
    let won = c.ok(
        "reserve",
        sb.reserve_request_id(&claim(&k2, &f2, &t2, 100, LONG)),
    )?;
    c.ensure(won.is_none(), || {
        format!("a released id was not free again: {won:?}")
    })?;

    // An in-flight id older than the lease is taken over; the old reservation's release is
    // then a no-op.
    std::thread::sleep(Duration::from_millis(20));
    let k3 = [3u8; 32];
    c.ok(
        "reserve",
        sa.reserve_request_id(&claim(&k3, &f1, &t1, 100, LONG)),
    )?;
    std::thread::sleep(Duration::from_millis(20));
    let taken = c.ok(
        "take over",
        sb.reserve_request_id(&claim(&k3, &f2, &t2, 100, Duration::from_millis(10))),
    )?;
    c.ensure(taken.is_none(), || {
        format!("an in-flight id past its lease was not taken over: {taken:?}")
    })?;
    c.ok("release old", sa.release_request_id(&k3, &t1))?;
    let read = c.ok("read", sa.request_id(&k3))?;
    c.ensure(read.as_ref().map(|r| r.fingerprint) == Some(f2), || {
        format!("the taken-over reservation was released by the old one: {read:?}")
    })?;

    // The window keeps the newest `window` ids.
    let keys: Vec<[u8; 32]> = (0..5u8).map(|i| [0x40 + i; 32]).collect();
    for key in &keys {
        c.ok(
            "reserve",
            sa.reserve_request_id(&claim(key, &f1, &t1, 3, LONG)),
        )?;
    }
    for (i, key) in keys.iter().enumerate() {
        let present = c.ok("read", sb.request_id(key))?.is_some();
        c.ensure(present == (i >= 2), || {
            format!("window of 3 after 5 ids: id {i} present: {present}")
        })?;
    }

    // Two handles racing on one id: exactly one wins, every round.
    for round in 0..RACE_ROUNDS {
        let key = [0x80 | round; 32];
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = [(Arc::clone(&a), [0xa0u8; 16]), (Arc::clone(&b), [0xb0; 16])]
            .into_iter()
            .map(|(store, token)| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    store
                        .shared()
                        .map(|s| s.reserve_request_id(&claim(&key, &f1, &token, 1000, LONG)))
                })
            })
            .collect();
        let mut winners = 0;
        for racer in racers {
            let result = racer
                .join()
                .map_err(|_| c.fail("a racing thread panicked"))?
                .ok_or_else(|| c.fail("not shared"))?;
            match c.ok("racing reserve", result)? {
                None => winners += 1,
                Some(row) => c.ensure(row.fingerprint == f1 && row.logged.is_none(), || {
                    format!("the loser saw {row:?}")
                })?,
            }
        }
        c.ensure(winners == 1, || {
            format!("round {round}: {winners} reservations won (exactly one must)")
        })?;
    }
    Ok(())
}
