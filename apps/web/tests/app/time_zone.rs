//! Times in the school's time zone (TIME_ZONE, default Europe/Warsaw) across the
//! clock changes of 25 October 2026 and 28 March 2027: a lesson at 08:00 local
//! stays at 08:00, and the calendar's weeks run Monday to Sunday local time.

use actix_web::http::StatusCode;
use actix_web::test;
use napiatke_db::testing::{TestDb, FIXTURE_PASSWORD};
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    lessons_keep_their_local_hour_across_clock_changes => local_hours;
    another_zone_is_a_setting => other_zone;
}

/// Lessons around both changes, stored in UTC as the app stores them.
fn with_dst_lessons(engine: Engine) -> TestDb {
    let t = fixture(engine);
    t.execute(
        "INSERT INTO lessons (id, title, start_time, end_time, status, tutor_id, subject_id, room_id) VALUES \
         (101, 'Summer Friday', '2026-10-23 06:00:00', '2026-10-23 07:00:00', 'COMPLETED', 2, 1, 1), \
         (102, 'Winter Monday', '2026-10-26 07:00:00', '2026-10-26 08:00:00', 'COMPLETED', 2, 1, 1), \
         (103, 'Just after midnight', '2026-10-25 23:30:00', '2026-10-26 00:15:00', 'COMPLETED', 2, 1, NULL), \
         (104, 'Winter Friday', '2027-03-26 07:00:00', '2027-03-26 08:00:00', 'SCHEDULED', 2, 1, 1), \
         (105, 'Summer Monday', '2027-03-29 06:00:00', '2027-03-29 07:00:00', 'SCHEDULED', 2, 1, 1)",
    )
    .unwrap();
    t
}

/// The part of a calendar page under the day heading `day` ("Mon 26 Oct").
fn day<'a>(body: &'a str, day: &str) -> &'a str {
    let heading = format!("<h2>{day}</h2>");
    let from = body
        .find(&heading)
        .unwrap_or_else(|| panic!("no {day:?} in {body}"));
    let rest = &body[from + heading.len()..];
    &rest[..rest.find("<h2>").unwrap_or(rest.len())]
}

async fn local_hours(engine: Engine) {
    let t = with_dst_lessons(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    // The week of the October change (Monday 19th to Sunday 25th, 169 hours long).
    let before = send(&app, admin.get("/calendar/?start=2026-10-19")).await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(
        day(&before.body, "Fri 23 Oct").contains("href=\"/lessons/101/\">08:00 "),
        "{}",
        before.body
    );
    assert!(
        !before.body.contains("/lessons/103/"),
        "00:30 on Monday local is not in the week before, though it is Sunday in UTC"
    );
    let after = send(&app, admin.get("/calendar/?start=2026-10-26")).await;
    let monday = day(&after.body, "Mon 26 Oct");
    assert!(
        monday.contains("href=\"/lessons/103/\">00:30 ")
            && monday.contains("href=\"/lessons/102/\">08:00 "),
        "{monday}"
    );
    assert!(after.body.contains("· 2 lessons"), "{}", after.body);

    // The March change: 08:00 before and after.
    let march = send(&app, admin.get("/calendar/?start=2027-03-22")).await;
    assert!(day(&march.body, "Fri 26 Mar").contains("href=\"/lessons/104/\">08:00 "));
    let april = send(&app, admin.get("/calendar/?start=2027-03-29")).await;
    assert!(day(&april.body, "Mon 29 Mar").contains("href=\"/lessons/105/\">08:00 "));

    // The lesson page and the list show the same local times.
    let lesson = send(&app, admin.get("/lessons/102/")).await;
    assert!(
        lesson.body.contains("Mon 26 Oct 08:00–09:00"),
        "{}",
        lesson.body
    );
    let lesson = send(&app, admin.get("/lessons/105/")).await;
    assert!(
        lesson.body.contains("Mon 29 Mar 08:00–09:00"),
        "{}",
        lesson.body
    );

    // The fixture's lessons (November, UTC+1): lesson 2 at 09:00 UTC is 10:00 here.
    let lesson = send(&app, admin.get("/lessons/2/")).await;
    assert!(
        lesson.body.contains("Thu 26 Nov 10:00–11:00"),
        "{}",
        lesson.body
    );
}

async fn other_zone(engine: Engine) {
    let t = with_dst_lessons(engine);
    let state = state_tweaked(&t, false, &cache_prefix(), Some(redis_url()), |s| {
        s.time_zone = "America/New_York".parse().unwrap();
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(state)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    // 07:00 UTC on 26 October is 03:00 in New York (still on summer time, UTC-4).
    let lesson = send(&app, admin.get("/lessons/102/")).await;
    assert!(
        lesson.body.contains("Mon 26 Oct 03:00–04:00"),
        "{}",
        lesson.body
    );
    // And 23:30 UTC on Sunday the 25th is 19:30 that Sunday there.
    let week = send(&app, admin.get("/calendar/?start=2026-10-19")).await;
    assert!(day(&week.body, "Sun 25 Oct").contains("href=\"/lessons/103/\">19:30 "));
}
