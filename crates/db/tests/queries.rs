//! Every query module against the hand-built fixture, on SQLite and PostgreSQL.

mod common;

use napiatke_db::both_engines;

use common::{add_bulk, conn, date, fixture, now, ts};
use napiatke_db::queries::lessons::{self, LessonCounts, LessonFilter};
use napiatke_db::queries::{catalog, dashboard, invoices, students, users, PageRequest, Scope};
use napiatke_db::testing::count_statements;
use napiatke_db::{DbError, Engine};
use napiatke_domain::{
    AttendanceRate, AttendanceStatus, Email, LessonId, LessonStatus, Money, SubjectId, UserId, Zone,
};

const SARA: UserId = UserId(4);
const BOB: UserId = UserId(5);
const DAN: UserId = UserId(7);
const TINA: UserId = UserId(2);
const TOM: UserId = UserId(3);

fn ids(items: &[lessons::LessonDetail]) -> Vec<i64> {
    items.iter().map(|d| d.card.lesson.id.get()).collect()
}

fn ok<T>(r: Result<T, DbError>) -> T {
    r.unwrap_or_else(|e| panic!("query failed: {e}"))
}

/// Runs a list over 10 and over 1,000 parents: the statement counts must be equal
/// and at most 3 (count, page, one prefetch).
fn same_count_for_10_and_1000(
    what: &str,
    c: &mut napiatke_db::PooledConn,
    mut run: impl FnMut(&mut napiatke_db::PooledConn, u32),
) {
    let (_, small) = count_statements(|| run(c, 10));
    let (_, large) = count_statements(|| run(c, 1_000));
    assert_eq!(small.len(), large.len(), "{what}: {small:?} vs {large:?}");
    assert!(large.len() <= 3, "{what}: {large:?}");
    assert!(!large.is_empty(), "{what}: no statement seen");
}

both_engines! {
    two_uploads_for_one_owner_at_once_both_land => |engine: Engine| {
        use napiatke_db::queries::images::{self, NewImage, Owner};
        use napiatke_domain::RoomId;
        let t = fixture(engine);
        let new = |source: &'static str| NewImage {
            source,
            original: "originals/aa/aa00000000000001",
            width: 8,
            height: 8,
            has_alpha: false,
            placeholder: "data:image/webp;base64,AAAA",
            uploaded_by: None,
            bytes: 100,
            lease: None,
        };
        let room = Owner::Room(RoomId(1));
        // The first upload's transaction writes the room's link and holds it open
        // while the second runs on another connection: the second must wait and then
        // replace the link, not fail on its key (a DELETE then INSERT does, on
        // PostgreSQL, since the DELETE cannot see the uncommitted row).
        let mut a = conn(&t);
        let (started, go) = std::sync::mpsc::channel();
        let second = std::thread::scope(|scope| {
            let (t, new) = (&t, &new);
            let b = scope.spawn(move || {
                let _ = go.recv();
                let mut c = conn(t);
                images::create(&mut c, &new("bb00000000000002"), room, now())
            });
            ok(diesel::Connection::transaction::<_, napiatke_db::DbError, _>(&mut *a, |c| {
                images::create(c, &new("aa00000000000001"), room, now())?;
                let _ = started.send(());
                std::thread::sleep(std::time::Duration::from_millis(300));
                Ok(())
            }));
            b.join().unwrap_or_else(|_| panic!("second upload panicked"))
        });
        let second = ok(second);
        assert_eq!(ok(images::owner(&mut a, second.id)), Some(room), "the later upload is the room's");
    };

    images_belong_to_one_owner_and_load_in_one_statement => |engine: Engine| {
        use napiatke_db::queries::images::{self, NewImage, Owner};
        use napiatke_domain::{ImageId, ImageStatus, ImageVariant, RoomId};
        let t = fixture(engine);
        let mut c = conn(&t);
        let new = |source: &'static str| NewImage {
            source,
            original: "originals/aa/aa00000000000001",
            width: 800,
            height: 600,
            has_alpha: false,
            placeholder: "data:image/webp;base64,AAAA",
            uploaded_by: None,
            bytes: 100,
            lease: None,
        };
        let photo = ok(images::create(&mut c, &new("aa00000000000001"), Owner::Room(RoomId(1)), now()));
        assert_eq!((photo.status, photo.variants.len()), (ImageStatus::Processing, 0));
        let first = ok(images::create(&mut c, &new("bb00000000000002"), Owner::User(SARA), now()));
        // A new avatar replaces the old one as Sara's.
        let second = ok(images::create(&mut c, &new("cc00000000000003"), Owner::User(SARA), now()));
        ok(images::create(&mut c, &new("dd00000000000004"), Owner::User(BOB), now()));
        assert_eq!(ok(images::owner(&mut c, second.id)), Some(Owner::User(SARA)));
        assert_eq!(ok(images::owner(&mut c, first.id)), None, "replaced: nobody's");
        assert_eq!(ok(images::owner(&mut c, photo.id)), Some(Owner::Room(RoomId(1))));

        let variant = ImageVariant {
            path: "cc/cc00000000000003/w320x240-1a2b3c4d.webp".to_owned(),
            format: napiatke_domain::ImageFormat::WebP,
            kind: napiatke_domain::VariantKind::Width,
            width: 320,
            height: 240,
            bytes: 1234,
            // Searched for (issue 16): recorded with the variant and read back.
            quality: Some(77),
            score: Some(80.25),
        };
        ok(images::set_variants(&mut c, second.id, std::slice::from_ref(&variant), ImageStatus::Ready, None, now()));
        let got = ok(images::get(&mut c, second.id));
        assert_eq!((got.status, got.variants), (ImageStatus::Ready, vec![variant]));
        assert!(matches!(
            images::set_variants(&mut c, ImageId(999), &[], ImageStatus::Failed, Some("x"), now()),
            Err(DbError::NotFound)
        ));

        // Avatars of any number of users: one statement; those without one absent.
        let (avatars, sql) = count_statements(|| ok(images::avatars(&mut c, &[SARA, BOB, DAN, TINA])));
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert_eq!(avatars.len(), 2);
        assert_eq!(avatars.get(&SARA).map(|a| a.id), Some(second.id));
        let (rooms, sql) = count_statements(|| ok(images::rooms_with_photos(&mut c)));
        assert_eq!(sql.len(), 1, "{sql:?}");
        assert_eq!(rooms.len(), 1, "the fixture's one room");
        let with_photo: Vec<_> = rooms.iter().filter(|(_, p)| p.is_some()).map(|(r, _)| r.id).collect();
        assert_eq!(with_photo, vec![RoomId(1)]);
        assert_eq!(ok(images::originals(&mut c)).len(), 4);
    };

    dashboard_global_stats_match_the_fixture => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let s = ok(dashboard::global_stats(&mut c, now(), Zone::UTC));
        assert_eq!(s.active_students, 3, "Sara, Bob, Dan (Cleo is inactive)");
        assert_eq!(s.active_tutors, 2, "Tina, Tom (Ivy is inactive)");
        assert_eq!((s.today.scheduled, s.today.ongoing, s.today.completed), (1, 1, 1));
        assert_eq!(s.today.total(), 3);
        assert_eq!(s.month_revenue, Money::from_minor(10_000 + 5_050));
    };

    today_and_this_month_are_the_schools_local_ones => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let warsaw = Zone::default();
        // 23:30 UTC on Thursday the 26th is 00:30 on Friday in Warsaw: today is the
        // 27th, whose one lesson (4, at 11:00 local) is scheduled.
        let late = ts(2026, 11, 26, 23, 30);
        let s = ok(dashboard::global_stats(&mut c, late, warsaw));
        assert_eq!((s.today.scheduled, s.today.ongoing, s.today.completed), (1, 0, 0));
        let s = ok(dashboard::global_stats(&mut c, late, Zone::UTC));
        assert_eq!((s.today.scheduled, s.today.ongoing, s.today.completed), (1, 1, 1));
        assert_eq!(ok(dashboard::tutor_stats(&mut c, TINA, late, warsaw)).today, 1, "lesson 4");
        assert_eq!(ok(dashboard::tutor_stats(&mut c, TOM, late, warsaw)).today, 0);
        // 23:30 UTC on 30 November is already December in Warsaw: nothing paid yet.
        let s = ok(dashboard::global_stats(&mut c, ts(2026, 11, 30, 23, 30), warsaw));
        assert_eq!(s.month_revenue, Money::ZERO);
        let s = ok(dashboard::global_stats(&mut c, ts(2026, 11, 30, 22, 30), warsaw));
        assert_eq!(s.month_revenue, Money::from_minor(15_050));
    };

    weekly_trends_bucket_marks_and_revenue_by_week_in_one_statement => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        // Five weeks, Monday 26 October to Monday 30 November (UTC days here).
        let days: Vec<_> = (0..=5u64).map(|w| date(2026, 10, 26) + chrono::Days::new(7 * w)).collect();
        let (all, sql) = count_statements(|| ok(dashboard::weekly(&mut c, &days, Zone::UTC, Scope::All)));
        assert_eq!(sql.len(), 1, "{sql:?}");
        let marks: Vec<_> = all.iter().map(|w| (w.attendance.present, w.attendance.marked)).collect();
        // Lesson 1 (20 Nov): one present, one absent; lesson 2 (26 Nov): one late.
        assert_eq!(marks, vec![(0, 0), (0, 0), (0, 0), (1, 2), (0, 1)]);
        let paid: Vec<_> = all.iter().map(|w| w.paid).collect();
        assert_eq!(
            paid,
            vec![Money::from_minor(10_000), Money::from_minor(5_050), Money::ZERO, Money::ZERO, Money::ZERO],
            "paid invoices of 1 and 5 November; the ISSUED one of the 10th is not revenue"
        );
        let tina = ok(dashboard::weekly(&mut c, &days, Zone::UTC, Scope::Tutor(TINA)));
        assert_eq!(tina[3].attendance, AttendanceRate::new(1, 2));
        assert!(tina.iter().all(|w| w.paid == Money::ZERO), "revenue is the school's alone");
        let tom = ok(dashboard::weekly(&mut c, &days, Zone::UTC, Scope::Tutor(TOM)));
        assert!(tom.iter().all(|w| w.attendance.marked == 0));
        let sara = ok(dashboard::weekly(&mut c, &days, Zone::UTC, Scope::Student(SARA)));
        let marks: Vec<_> = sara.iter().map(|w| (w.attendance.present, w.attendance.marked)).collect();
        assert_eq!(marks, vec![(0, 0), (0, 0), (0, 0), (1, 1), (0, 1)]);
        let bob = ok(dashboard::weekly(&mut c, &days, Zone::UTC, Scope::Student(BOB)));
        assert_eq!(bob[3].attendance, AttendanceRate::new(0, 1));
        assert!(ok(dashboard::weekly(&mut c, &days[..1], Zone::UTC, Scope::All)).is_empty());
    };

    tutor_and_student_stats_match_the_fixture => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let tina = ok(dashboard::tutor_stats(&mut c, TINA, now(), Zone::UTC));
        assert_eq!(tina.upcoming, 2, "lessons 4 and 7");
        assert_eq!(tina.today, 1, "lesson 2");
        assert_eq!(tina.completed_this_month, 2, "lessons 1 and 2");
        assert_eq!(tina.students, 3, "Sara, Bob, Dan");
        assert_eq!(tina.attendance, AttendanceRate::new(1, 3));
        let tom = ok(dashboard::tutor_stats(&mut c, TOM, now(), Zone::UTC));
        assert_eq!((tom.upcoming, tom.today, tom.completed_this_month, tom.students), (1, 2, 0, 2));
        assert_eq!(tom.attendance.percent(), None);

        let sara = ok(dashboard::student_stats(&mut c, SARA, now()));
        assert_eq!((sara.upcoming, sara.completed), (1, 2));
        assert_eq!(sara.attendance.to_string(), "50.0%");
        assert_eq!(sara.unpaid, Money::ZERO);
        let bob = ok(dashboard::student_stats(&mut c, BOB, now()));
        assert_eq!((bob.upcoming, bob.completed), (1, 1));
        assert_eq!(bob.attendance, AttendanceRate::new(0, 1));
        assert_eq!(bob.unpaid, Money::from_minor(3_000));
        assert_eq!(ok(dashboard::student_stats(&mut c, DAN, now())).unpaid, Money::from_minor(2_000));
    };

    invoices_sum_paid_revenue_per_month => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        assert_eq!(ok(invoices::month_paid_revenue(&mut c, date(2026, 11, 30))), Money::from_minor(15_050));
        assert_eq!(ok(invoices::month_paid_revenue(&mut c, date(2026, 10, 1))), Money::from_minor(7_000));
        assert_eq!(ok(invoices::month_paid_revenue(&mut c, date(2026, 9, 1))), Money::ZERO);
        assert_eq!(
            ok(invoices::paid_revenue(&mut c, date(2026, 10, 1), date(2026, 12, 1))),
            Money::from_minor(22_050)
        );
    };

    lesson_list_pages_newest_first_with_related_rows => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let all = LessonFilter::default();
        let p1 = ok(lessons::list(&mut c, &all, PageRequest::new(1, 3)));
        assert_eq!(p1.total, 7);
        assert_eq!(p1.total_pages(), 3);
        assert_eq!(ids(&p1.items), vec![7, 4, 5]);
        let l4 = &p1.items[1];
        assert_eq!(l4.card.tutor.full_name(), "Tina Tutor");
        assert_eq!(l4.card.subject.name, "Math");
        assert_eq!(l4.card.subject.color.as_str(), "#112233");
        assert_eq!(l4.card.room.as_ref().map(|r| r.name.as_str()), Some("Room A"));
        assert_eq!((l4.student_count(), l4.present_count()), (3, 0));
        let names: Vec<String> = l4.students.iter().map(|s| s.student.full_name()).collect();
        assert_eq!(names, ["Sara Adams", "Bob Brown", "Dan Dunn"]);
        assert!(p1.items[0].students.is_empty(), "lesson 7 has nobody");

        let p2 = ok(lessons::list(&mut c, &all, PageRequest::new(2, 3)));
        assert_eq!(ids(&p2.items), vec![3, 2, 1]);
        let l2 = &p2.items[1];
        assert_eq!(l2.card.room, None);
        assert_eq!(l2.students[0].attendance, Some(AttendanceStatus::Late));
        let l1 = &p2.items[2];
        assert_eq!((l1.student_count(), l1.present_count()), (2, 1));
        assert_eq!(l1.students[1].class_name.as_deref(), Some("8B"));
        let p3 = ok(lessons::list(&mut c, &all, PageRequest::new(3, 3)));
        assert_eq!(ids(&p3.items), vec![6]);
        assert!(!p3.has_next());
        let past_end = ok(lessons::list(&mut c, &all, PageRequest::new(9, 3)));
        assert!(past_end.items.is_empty());
        assert_eq!(past_end.total, 7);
    };

    lesson_list_filters_by_status_subject_and_scope => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let page = PageRequest::new(1, 50);
        let mut list = |f: LessonFilter| {
            let p = ok(lessons::list(&mut c, &f, page));
            assert_eq!(p.total, p.items.len() as i64);
            ids(&p.items)
        };
        assert_eq!(list(LessonFilter { status: Some(LessonStatus::Completed), ..Default::default() }), vec![2, 1]);
        assert_eq!(list(LessonFilter { subject: Some(SubjectId(2)), ..Default::default() }), vec![5, 2]);
        assert_eq!(list(LessonFilter { scope: Scope::Student(SARA), ..Default::default() }), vec![4, 2, 1, 6]);
        assert_eq!(list(LessonFilter { scope: Scope::Tutor(TOM), ..Default::default() }), vec![5, 3]);
        assert_eq!(
            list(LessonFilter { status: Some(LessonStatus::Scheduled), subject: Some(SubjectId(1)), scope: Scope::Student(DAN) }),
            vec![4]
        );
        assert_eq!(list(LessonFilter { subject: Some(SubjectId(99)), ..Default::default() }), Vec::<i64>::new());
    };

    lesson_detail_respects_scope => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let l1 = ok(lessons::get(&mut c, LessonId(1), Scope::All));
        assert_eq!(l1.card.lesson.title, "Math 1");
        assert_eq!(l1.card.lesson.start_time, ts(2026, 11, 20, 10, 0));
        assert_eq!(l1.card.lesson.status, LessonStatus::Completed);
        let marks: Vec<_> = l1.students.iter().map(|s| (s.student.id, s.attendance)).collect();
        assert_eq!(marks, vec![(SARA, Some(AttendanceStatus::Present)), (BOB, Some(AttendanceStatus::Absent))]);
        assert!(ok(lessons::get(&mut c, LessonId(1), Scope::Student(BOB))).students.len() == 2);
        assert!(matches!(lessons::get(&mut c, LessonId(1), Scope::Student(DAN)), Err(DbError::NotFound)));
        assert!(matches!(lessons::get(&mut c, LessonId(1), Scope::Tutor(TOM)), Err(DbError::NotFound)));
        assert!(matches!(lessons::get(&mut c, LessonId(999), Scope::All), Err(DbError::NotFound)));
    };

    upcoming_lessons_are_scheduled_after_now_soonest_first => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let ids = |v: Vec<lessons::LessonCard>| v.iter().map(|l| l.lesson.id.get()).collect::<Vec<_>>();
        assert_eq!(ids(ok(lessons::upcoming(&mut c, now(), Scope::All, 10))), vec![5, 4, 7]);
        assert_eq!(ids(ok(lessons::upcoming(&mut c, now(), Scope::All, 2))), vec![5, 4]);
        assert_eq!(ids(ok(lessons::upcoming(&mut c, now(), Scope::Student(SARA), 10))), vec![4]);
        assert_eq!(ids(ok(lessons::upcoming(&mut c, now(), Scope::Tutor(TOM), 10))), vec![5]);
        let next = ok(lessons::upcoming(&mut c, now(), Scope::All, 1));
        assert_eq!(next[0].tutor.full_name(), "Tom Teacher");
        assert_eq!(next[0].subject.name, "Physics");
        assert_eq!(next[0].room, None);
    };

    calendar_week_loads_the_lessons_inside_it => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let week = ok(lessons::for_calendar(&mut c, ts(2026, 11, 23, 0, 0), ts(2026, 11, 30, 0, 0), Scope::All));
        let got: Vec<(i64, &str)> = week.iter().map(|e| (e.id.get(), e.subject_name.as_str())).collect();
        assert_eq!(got, vec![(2, "Physics"), (3, "Math"), (5, "Physics"), (4, "Math")]);
        assert_eq!(week[1].tutor_last_name, "Teacher");
        assert_eq!(week[1].room_name.as_deref(), Some("Room A"));
        assert_eq!(week[1].status, LessonStatus::Ongoing);
        assert_eq!(week[0].subject_color.as_str(), "#AABBCC");
        let dans = ok(lessons::for_calendar(&mut c, ts(2026, 11, 23, 0, 0), ts(2026, 11, 30, 0, 0), Scope::Student(DAN)));
        assert_eq!(dans.iter().map(|e| e.id.get()).collect::<Vec<_>>(), vec![3, 5, 4]);
        assert!(ok(lessons::for_calendar(&mut c, ts(2030, 1, 7, 0, 0), ts(2030, 1, 14, 0, 0), Scope::All)).is_empty());
    };

    student_and_present_counts_per_lesson => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let counts = ok(lessons::student_counts(&mut c, &[LessonId(1), LessonId(4), LessonId(7)]));
        assert_eq!(counts.get(&LessonId(1)), Some(&LessonCounts { students: 2, present: 1 }));
        assert_eq!(counts.get(&LessonId(4)), Some(&LessonCounts { students: 3, present: 0 }));
        assert_eq!(counts.get(&LessonId(7)), Some(&LessonCounts::default()));
        assert!(ok(lessons::student_counts(&mut c, &[])).is_empty());
    };

    student_list_has_lesson_stats_and_search => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let p = ok(students::list(&mut c, None, PageRequest::new(1, 50)));
        assert_eq!(p.total, 3);
        let rows: Vec<(&str, Option<&str>, i64, i64, String)> = p
            .items
            .iter()
            .map(|s| (s.last_name.as_str(), s.class_name.as_deref(), s.stats.total, s.stats.completed, s.stats.attendance.to_string()))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("Adams", Some("7A"), 4, 2, "50.0%".to_owned()),
                ("Brown", Some("8B"), 3, 1, "0.0%".to_owned()),
                ("Dunn", Some("7A"), 3, 0, "—".to_owned()),
            ]
        );
        assert_eq!(p.items[0].email, "sara@napiatke.local");
        let names = |q: &str, c: &mut napiatke_db::PooledConn| {
            ok(students::list(c, Some(q), PageRequest::new(1, 50)))
                .items
                .into_iter()
                .map(|s| s.first_name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("bRo", &mut c), ["Bob"]);
        assert_eq!(names("7a", &mut c), ["Sara", "Dan"], "class match; Cleo is inactive");
        assert_eq!(names("sara adams", &mut c), ["Sara"]);
        assert_eq!(names("DAN@", &mut c), ["Dan"]);
        assert_eq!(names("%", &mut c), Vec::<String>::new(), "a typed % is literal");
        assert_eq!(names("   ", &mut c).len(), 3, "blank search lists everyone");
        let p2 = ok(students::list(&mut c, None, PageRequest::new(2, 2)));
        assert_eq!((p2.total, p2.items.len()), (3, 1));
        assert_eq!(ok(students::active_count(&mut c)), 3);
        let stats = ok(students::lesson_stats(&mut c, &[UserId(6)]));
        assert!(stats.is_empty(), "Cleo has no lessons");
    };

    users_and_catalogues_load => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        let email = Email::parse("SARA@napiatke.local").unwrap();
        let found = ok(users::credentials(&mut c, &email));
        let (user, hash) = found.unwrap_or_else(|| panic!("sara not found by e-mail"));
        assert_eq!((user.id, user.full_name()), (SARA, "Sara Adams".to_owned()));
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let nobody = Email::parse("nobody@napiatke.local").unwrap();
        assert!(ok(users::credentials(&mut c, &nobody)).is_none());
        assert_eq!(ok(users::get(&mut c, TOM)).role, napiatke_domain::Role::Tutor);
        assert!(matches!(users::get(&mut c, UserId(404)), Err(DbError::NotFound)));
        assert_eq!(ok(users::count_active(&mut c, napiatke_domain::Role::Tutor)), 2);
        let subjects: Vec<String> = ok(catalog::subjects(&mut c)).into_iter().map(|s| s.name).collect();
        assert_eq!(subjects, ["Math", "Physics"]);
        assert_eq!(ok(catalog::rooms(&mut c)).len(), 1);
    };

    list_statement_counts_do_not_grow_with_rows => |engine: Engine| {
        let t = fixture(engine);
        let mut c = conn(&t);
        add_bulk(&mut c, 1_000);
        same_count_for_10_and_1000("lessons", &mut c, |c, n| {
            let p = ok(lessons::list(c, &LessonFilter::default(), PageRequest::new(1, n)));
            assert_eq!(p.items.len(), n as usize);
            assert!(p.items.iter().all(|l| l.student_count() >= 1 || l.card.lesson.id.get() == 7));
        });
        same_count_for_10_and_1000("students", &mut c, |c, n| {
            let p = ok(students::list(c, None, PageRequest::new(1, n)));
            assert_eq!(p.items.len(), n as usize);
        });
        same_count_for_10_and_1000("upcoming", &mut c, |c, n| {
            assert_eq!(ok(lessons::upcoming(c, now(), Scope::All, i64::from(n))).len(), n as usize);
        });
        // The calendar over a week holding 1,000 lessons: still one statement.
        let (week, sql) = count_statements(|| ok(lessons::for_calendar(&mut c, ts(2027, 1, 1, 0, 0), ts(2027, 1, 2, 0, 0), Scope::All)));
        assert_eq!((week.len(), sql.len()), (1_000, 1));
        let ids: Vec<LessonId> = (1000..2000).map(LessonId).collect();
        let (counts, sql) = count_statements(|| ok(lessons::student_counts(&mut c, &ids)));
        assert_eq!((counts.len(), sql.len()), (1_000, 1));
        assert!(counts.values().all(|c| c.students == 2));
        let (_, sql) = count_statements(|| ok(dashboard::global_stats(&mut c, now(), Zone::UTC)));
        assert_eq!(sql.len(), 1);
    };
}

/// Deep pages and indexed search.
mod lists {
    use super::*;

    /// Every page of `filter` by offset and by seeking from the cached page starts: the
    /// same lessons in the same order, pages past the end empty.
    fn keyset_matches_offset(c: &mut napiatke_db::PooledConn, filter: &LessonFilter, size: u32) {
        let (starts, total) = ok(lessons::page_starts(c, filter, size));
        let by_offset = ok(lessons::list(c, filter, PageRequest::new(1, size)));
        assert_eq!(total, by_offset.total, "{filter:?}");
        assert_eq!(
            starts.len() as u32,
            if total == 0 {
                0
            } else {
                by_offset.total_pages()
            },
            "{filter:?}"
        );
        for (n, from) in starts.iter().enumerate() {
            let page = ok(lessons::list(
                c,
                filter,
                PageRequest::new(n as u32 + 1, size),
            ));
            let sought: Vec<i64> = ok(lessons::page_ids(c, filter, *from, size))
                .iter()
                .map(|id| id.get())
                .collect();
            assert_eq!(sought, ids(&page.items), "{filter:?} page {}", n + 1);
            assert_eq!(Some(from.id.get()), sought.first().copied());
        }
    }

    both_engines! {
        deep_pages_seek_to_the_same_lessons_as_offsets => |engine: Engine| {
            let t = fixture(engine);
            let mut c = conn(&t);
            // 1,000 lessons at one start time: ties broken by id, across page edges.
            add_bulk(&mut c, 1_000);
            for filter in [
                LessonFilter::default(),
                LessonFilter { status: Some(LessonStatus::Completed), ..Default::default() },
                LessonFilter { status: Some(LessonStatus::Scheduled), ..Default::default() },
                LessonFilter { subject: Some(SubjectId(2)), ..Default::default() },
                LessonFilter { scope: Scope::Student(SARA), ..Default::default() },
                LessonFilter { scope: Scope::Tutor(TOM), ..Default::default() },
                LessonFilter { subject: Some(SubjectId(99)), ..Default::default() },
            ] {
                for size in [1, 3, 50] {
                    keyset_matches_offset(&mut c, &filter, size);
                }
            }
            // Page 20 of 21 costs one statement, like page 1; so do the page starts.
            let all = LessonFilter::default();
            let ((starts, total), sql) = count_statements(|| ok(lessons::page_starts(&mut c, &all, 50)));
            assert_eq!((starts.len(), total, sql.len()), (21, 1_007, 1));
            let (deep, sql) = count_statements(|| ok(lessons::page_ids(&mut c, &all, starts[19], 50)));
            assert_eq!((deep.len(), sql.len()), (50, 1));
            let (rows, sql) = count_statements(|| ok(lessons::details(&mut c, &deep)));
            assert_eq!((rows.len(), sql.len()), (50, 2));
            assert_eq!(rows.iter().map(|d| d.card.lesson.id).collect::<Vec<_>>(), deep, "in the order asked");
            assert!(ok(lessons::details(&mut c, &[LessonId(424_242)])).is_empty());
        };

        student_search_is_indexed_folded_and_literal => |engine: Engine| {
            use diesel::connection::SimpleConnection;
            let t = fixture(engine);
            let mut c = conn(&t);
            assert!(!ok(students::search_is_stale(&mut c)), "the fixture indexes its students");
            c.batch_execute(
                "INSERT INTO users (id, email, first_name, last_name, role, is_active, password_hash, created_at) \
                 VALUES (20, 'l.zolc_1@napiatke.local', 'Łukasz', 'Żółć \"Q\"', 'STUDENT', TRUE, 'x', '2026-01-01 00:00:00'); \
                 INSERT INTO student_profiles (user_id, class_name, parent_email) VALUES (20, '8B', 'p@napiatke.local');",
            )
            .unwrap();
            assert!(ok(students::search_is_stale(&mut c)), "a student written around the seed");
            assert_eq!(ok(students::rebuild_search(&mut c)), 5);
            assert!(!ok(students::search_is_stale(&mut c)));
            let names = |q: &str, c: &mut napiatke_db::PooledConn| {
                let ids = ok(students::search_ids(c, Some(q)));
                ok(students::rows(c, &ids)).into_iter().map(|s| s.first_name).collect::<Vec<_>>()
            };
            for q in ["lukasz", "ŁUKASZ", "Łukasz", "zolc", "ŻÓŁĆ", "ukasz zo", "lu", "zolc_1", "\"q\""] {
                assert_eq!(names(q, &mut c), ["Łukasz"], "{q:?}");
            }
            assert_eq!(names("8b", &mut c), ["Bob", "Łukasz"], "class, in list order");
            assert_eq!(names("zolc%1", &mut c), Vec::<String>::new(), "a typed % is literal");
            assert_eq!(names("l_z", &mut c), Vec::<String>::new(), "so is _");
            assert_eq!(names("\"", &mut c), ["Łukasz"], "a lone quote is text, not syntax");
            assert_eq!(names("  ", &mut c).len(), 4, "blank: every active student");
            // One statement whatever the term's length (trigram index or the short scan).
            for q in ["lukasz", "lu"] {
                let (_, sql) = count_statements(|| ok(students::search_ids(&mut c, Some(q))));
                assert_eq!(sql.len(), 1, "{q}: {sql:?}");
            }
            let first = ok(students::search_ids(&mut c, None));
            let page = students::page_of(&first, PageRequest::new(2, 3));
            assert_eq!(page.len(), 1);
            assert!(students::page_of(&first, PageRequest::new(3, 3)).is_empty());
        };
    }
}

/// An export's walk: chunks after a cursor cover the list exactly once, in order.
mod export {
    use super::*;

    both_engines! {
        chunks_after_a_cursor_cover_the_list_once_in_order => |engine: Engine| {
            let t = fixture(engine);
            let mut c = conn(&t);
            add_bulk(&mut c, 1_000);
            for filter in [
                LessonFilter::default(),
                LessonFilter { scope: Scope::Student(SARA), ..Default::default() },
                LessonFilter { status: Some(LessonStatus::Completed), ..Default::default() },
            ] {
                let whole = ok(lessons::list(&mut c, &filter, PageRequest::new(1, 1000)));
                let mut walked = Vec::new();
                let mut after = None;
                loop {
                    let (chunk, sql) = count_statements(|| ok(lessons::cards_after(&mut c, &filter, after, 97)));
                    assert_eq!(sql.len(), 1);
                    let Some(last) = chunk.last() else { break };
                    after = Some(lessons::PageStart { start_time: last.lesson.start_time, id: last.lesson.id });
                    walked.extend(chunk.iter().map(|card| card.lesson.id.get()));
                }
                let expected: Vec<i64> = if whole.total > 1000 {
                    // Past one list page: compare against two pages by offset.
                    let rest = ok(lessons::list(&mut c, &filter, PageRequest::new(2, 1000)));
                    ids(&whole.items).into_iter().chain(ids(&rest.items)).collect()
                } else {
                    ids(&whole.items)
                };
                assert_eq!(walked.len() as i64, whole.total, "{filter:?}");
                assert_eq!(walked, expected, "{filter:?}");
            }
        };
    }
}

mod timeouts {
    use std::time::{Duration, Instant};

    use diesel::RunQueryDsl;
    use napiatke_db::testing::TestDb;
    use napiatke_db::{Db, DbError, PoolOptions};

    /// A request's statement that runs past the statement timeout is cancelled by
    /// PostgreSQL, reported as a timeout (503 above), and the connection serves the
    /// next request.
    #[test]
    fn postgres_cancels_a_statement_past_the_timeout() {
        let t = TestDb::postgres().unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
        let db = Db::open(
            &t.url,
            PoolOptions {
                max_size: 1,
                statement_timeout: Some(Duration::from_millis(200)),
                ..PoolOptions::default()
            },
        )
        .unwrap();
        let started = Instant::now();
        let slow = diesel::sql_query("SELECT pg_sleep(3)").execute(&mut *db.get().unwrap());
        let err = slow.map_err(DbError::from).err();
        assert!(matches!(err, Some(DbError::Timeout(_))), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        db.ping().unwrap();
        // Without one (migrations, seeding) the same statement runs to the end.
        let untimed = diesel::sql_query("SELECT pg_sleep(0.3)").execute(&mut *t.db.get().unwrap());
        assert!(untimed.is_ok(), "{untimed:?}");
    }

    /// A pooled connection whose server process went away (a restart, a failover,
    /// an administrator's pg_terminate_backend) fails its request as unavailable
    /// (503 above) and is never handed out again: the next request gets a new one.
    /// (Found by the failure drill: after a restart, one dead connection failed
    /// every request it served, 700 in 3 s.)
    #[test]
    fn a_connection_the_server_dropped_is_not_handed_out_again() {
        let t = TestDb::postgres().unwrap_or_else(|e| panic!("test PostgreSQL: {e}"));
        let db = Db::open(
            &t.url,
            PoolOptions {
                max_size: 1,
                ..PoolOptions::default()
            },
        )
        .unwrap();
        #[derive(diesel::QueryableByName)]
        struct Pid {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            pid: i32,
        }
        let pid = diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Pid>(&mut *db.get().unwrap())
            .unwrap()
            .pid;
        diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
            .execute(&mut *t.db.get().unwrap())
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        for attempt in 0..2 {
            use diesel::{ExpressionMethods, QueryDsl};
            // A statement this connection has not prepared yet: diesel prepares it
            // first, and a failure there does not mark the connection broken.
            let failed = napiatke_db::schema::users::table
                .filter(napiatke_db::schema::users::id.eq(attempt))
                .count()
                .execute(&mut *db.get().unwrap());
            if attempt == 0 {
                let err = failed.map_err(DbError::from).err();
                assert!(matches!(err, Some(DbError::Unavailable(_))), "{err:?}");
            } else {
                assert!(
                    failed.is_ok(),
                    "a new connection serves the next request: {failed:?}"
                );
            }
        }
        let again = diesel::sql_query("SELECT pg_backend_pid() AS pid")
            .get_result::<Pid>(&mut *db.get().unwrap())
            .unwrap()
            .pid;
        assert_ne!(again, pid);
    }
}
