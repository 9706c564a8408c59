//! Image job leases and periodic turns, on SQLite and PostgreSQL: what a cluster of
//! processes on one database relies on so a job runs in one process at a time and a
//! periodic task in one process per turn.

mod common;

use chrono::Duration;
use common::{conn, fixture, now};
use napiatke_db::both_engines;
use napiatke_db::queries::images::{self, NewImage, Owner};
use napiatke_db::queries::leases::{claim_images, finish_image, renew_images, take_turn, Lease};
use napiatke_db::testing::count_statements;
use napiatke_db::{DbError, Engine};
use napiatke_domain::{ImageId, ImageStatus, UserId};

fn ok<T>(r: Result<T, DbError>) -> T {
    r.unwrap_or_else(|e| panic!("query failed: {e}"))
}

/// A PROCESSING avatar for fixture user `user` (1-7), held by `lease` (none:
/// claimable at once).
fn processing(c: &mut napiatke_db::PooledConn, user: i64, lease: Option<Lease<'_>>) -> ImageId {
    let source = format!("{user:016x}");
    let original = format!("originals/{}/{source}", &source[..2]);
    let new = NewImage {
        source: &source,
        original: &original,
        width: 8,
        height: 8,
        has_alpha: false,
        placeholder: "data:image/webp;base64,AAAA",
        uploaded_by: None,
        bytes: 100,
        lease,
    };
    ok(images::create(c, &new, Owner::User(UserId(user)), now())).id
}

both_engines! {
    a_job_is_claimed_once_and_again_only_after_its_lease_runs_out => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let (t0, minute) = (now(), Duration::seconds(60));
        let a = Lease { owner: "a", until: t0 + minute };
        let b = Lease { owner: "b", until: t0 + minute };
        let held = processing(&mut c, 1, Some(a));
        let free = processing(&mut c, 2, None);
        let done = processing(&mut c, 3, None);
        ok(images::set_variants(&mut c, done, &[], ImageStatus::Ready, None, t0));

        // b takes the one nobody holds, in one statement; not a's, not a finished one.
        let (got, sql) = count_statements(|| ok(claim_images(&mut c, b, t0, 10)));
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert_eq!(got.iter().map(|g| g.id).collect::<Vec<_>>(), vec![free]);
        assert_eq!(got[0].original, format!("originals/00/{:016x}", 2));
        assert!(ok(claim_images(&mut c, b, t0, 10)).is_empty(), "claimed twice");

        // a renews its job: still not claimable when the old lease would have ended.
        let later = Lease { owner: "a", until: t0 + minute * 3 };
        assert_eq!(ok(renew_images(&mut c, later, &[held, free])), 1, "only a's own job is renewed");
        let b2 = Lease { owner: "b", until: t0 + minute * 4 };
        // b renews the job it took (its process is alive).
        assert_eq!(ok(renew_images(&mut c, b2, &[free])), 1);
        assert!(ok(claim_images(&mut c, b2, t0 + minute * 2, 10)).is_empty());
        // a stopped renewing (its process died): b takes the job after the lease.
        let got = ok(claim_images(&mut c, b2, t0 + minute * 3, 10));
        assert_eq!(got.iter().map(|g| g.id).collect::<Vec<_>>(), vec![held]);
        // a's renewal no longer touches it: the job is b's.
        assert_eq!(ok(renew_images(&mut c, Lease { owner: "a", until: t0 + minute * 9 }, &[held])), 0);
        assert!(ok(claim_images(&mut c, Lease { owner: "c", until: t0 + minute * 9 }, t0 + minute * 3, 10)).is_empty());
    };

    a_job_cut_off_after_its_first_phase_is_claimed_until_it_is_finished => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let (t0, minute) = (now(), Duration::seconds(60));
        let a = Lease { owner: "a", until: t0 + minute };
        // a recorded WebP and JPEG (READY: the image shows) and was making AVIF.
        let cut = processing(&mut c, 1, Some(a));
        ok(images::set_variants(&mut c, cut, &[], ImageStatus::Ready, None, t0));
        // a finished this one.
        let ended = processing(&mut c, 2, Some(a));
        ok(images::set_variants(&mut c, ended, &[], ImageStatus::Ready, None, t0));
        ok(finish_image(&mut c, ended));
        let b = Lease { owner: "b", until: t0 + minute * 3 };
        // a is alive: it renews the job it still runs.
        let a2 = Lease { owner: "a", until: t0 + minute * 2 };
        assert_eq!(ok(renew_images(&mut c, a2, &[cut, ended])), 1, "a READY job still running is renewed");
        assert!(ok(claim_images(&mut c, b, t0 + minute, 10)).is_empty());
        // a stopped: b takes the unfinished job, READY as it is; never the ended one.
        let got = ok(claim_images(&mut c, b, t0 + minute * 2, 10));
        assert_eq!(got.iter().map(|g| (g.id, g.status)).collect::<Vec<_>>(), vec![(cut, ImageStatus::Ready)]);
        ok(finish_image(&mut c, cut));
        assert!(ok(claim_images(&mut c, b, t0 + minute * 9, 10)).is_empty(), "a finished job is claimed again");
    };

    claims_take_at_most_the_limit_oldest_first => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let ids: Vec<ImageId> = (1..=3).map(|user| processing(&mut c, user, None)).collect();
        let lease = Lease { owner: "a", until: now() + Duration::seconds(60) };
        let first = ok(claim_images(&mut c, lease, now(), 2));
        assert_eq!(first.iter().map(|g| g.id).collect::<Vec<_>>(), ids[..2].to_vec());
        let rest = ok(claim_images(&mut c, lease, now(), 2));
        assert_eq!(rest.iter().map(|g| g.id).collect::<Vec<_>>(), ids[2..].to_vec());
    };

    concurrent_claims_get_disjoint_jobs => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        // Three users' avatars replaced over and over (each upload replaces the
        // link; the rows stay PROCESSING).
        let mut all: Vec<ImageId> = Vec::new();
        for i in 0..40 {
            all.push(processing(&mut c, 1 + i % 3, None));
        }
        drop(c);
        let claimed: Vec<Vec<ImageId>> = std::thread::scope(|s| {
            let handles: Vec<_> = ["a", "b", "c", "d"]
                .into_iter()
                .map(|owner| {
                    let t = &t;
                    s.spawn(move || {
                        let mut c = conn(t);
                        let lease = Lease { owner, until: now() + Duration::seconds(60) };
                        let mut mine = Vec::new();
                        loop {
                            // SQLite: one writer at a time, the others wait (busy
                            // timeout); PostgreSQL: locked rows are skipped.
                            let got = ok(claim_images(&mut c, lease, now(), 3));
                            if got.is_empty() {
                                break;
                            }
                            mine.extend(got.into_iter().map(|g| g.id));
                        }
                        mine
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
        });
        let mut every: Vec<ImageId> = claimed.iter().flatten().copied().collect();
        every.sort();
        assert_eq!(every, all, "each job claimed exactly once: {claimed:?}");
    };

    a_periodic_task_runs_once_per_turn_whoever_asks => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let (t0, hour) = (now(), Duration::hours(1));
        let (took, sql) = count_statements(|| ok(take_turn(&mut c, "image_gc", "a", t0, t0 + hour)));
        assert!(took, "the first turn is free");
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert!(!ok(take_turn(&mut c, "image_gc", "b", t0 + Duration::minutes(5), t0 + hour * 2)), "not due");
        assert!(!ok(take_turn(&mut c, "image_gc", "a", t0 + Duration::minutes(59), t0 + hour * 2)), "not due for a either");
        assert!(ok(take_turn(&mut c, "other_task", "b", t0, t0 + hour)), "tasks take turns apart");
        assert!(ok(take_turn(&mut c, "image_gc", "b", t0 + hour, t0 + hour * 2)), "due again");
        assert!(!ok(take_turn(&mut c, "image_gc", "a", t0 + hour, t0 + hour * 2)), "b took this turn");
    };
}
