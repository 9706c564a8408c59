//! Builds SPEC.md's demo data set in memory from a seed and a "now".

use chrono::{Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime};
use diesel::Insertable;
use napiatke_domain::{AttendanceStatus, InvoiceStatus, LessonStatus, Role};

use super::rng::SplitMix64;
use super::{Scale, SeedOptions};
use crate::schema::{
    attendance, invoices, lesson_students, lessons, rooms, student_profiles, subjects,
    tutor_profiles, users,
};

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub(crate) struct NewUser {
    pub id: i64,
    pub email: String,
    pub first_name: &'static str,
    pub last_name: String,
    pub role: &'static str,
    pub is_active: bool,
    pub password_hash: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = tutor_profiles, treat_none_as_default_value = false)]
pub(crate) struct NewTutorProfile {
    pub user_id: i64,
    pub bio: String,
    pub hourly_rate: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = student_profiles, treat_none_as_default_value = false)]
pub(crate) struct NewStudentProfile {
    pub user_id: i64,
    pub class_name: String,
    pub parent_email: String,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = subjects, treat_none_as_default_value = false)]
pub(crate) struct NewSubject {
    pub id: i64,
    pub name: &'static str,
    pub color: &'static str,
    pub level: &'static str,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = rooms, treat_none_as_default_value = false)]
pub(crate) struct NewRoom {
    pub id: i64,
    pub name: String,
    pub capacity: i32,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = lessons, treat_none_as_default_value = false)]
pub(crate) struct NewLesson {
    pub id: i64,
    pub title: String,
    pub start_time: NaiveDateTime,
    pub end_time: NaiveDateTime,
    pub status: &'static str,
    pub tutor_id: i64,
    pub subject_id: i64,
    pub room_id: Option<i64>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = lesson_students, treat_none_as_default_value = false)]
pub(crate) struct NewLessonStudent {
    pub id: i64,
    pub lesson_id: i64,
    pub student_id: i64,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = attendance, treat_none_as_default_value = false)]
pub(crate) struct NewAttendance {
    pub id: i64,
    pub lesson_student_id: i64,
    pub status: &'static str,
    pub marked_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = invoices, treat_none_as_default_value = false)]
pub(crate) struct NewInvoice {
    pub id: i64,
    pub student_id: i64,
    pub issued_date: NaiveDate,
    pub status: &'static str,
    pub total_amount: i64,
}

/// Every row of the demo set, in insertion order.
#[derive(Debug, Default)]
pub(crate) struct DemoData {
    pub users: Vec<NewUser>,
    pub tutor_profiles: Vec<NewTutorProfile>,
    pub student_profiles: Vec<NewStudentProfile>,
    pub subjects: Vec<NewSubject>,
    pub rooms: Vec<NewRoom>,
    pub lessons: Vec<NewLesson>,
    pub lesson_students: Vec<NewLessonStudent>,
    pub attendance: Vec<NewAttendance>,
    pub invoices: Vec<NewInvoice>,
}

/// Sizes of a scale.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizes {
    pub tutors: usize,
    pub students: usize,
    pub weeks: u32,
    pub lessons_per_tutor_week: usize,
    pub invoice_months: u32,
}

impl Scale {
    pub(crate) fn sizes(self) -> Sizes {
        match self {
            Scale::Tiny => Sizes {
                tutors: 3,
                students: 24,
                weeks: 4,
                lessons_per_tutor_week: 20,
                invoice_months: 6,
            },
            Scale::Standard => Sizes {
                tutors: 40,
                students: 1_200,
                weeks: 26,
                lessons_per_tutor_week: 20,
                invoice_months: 6,
            },
            Scale::Large => Sizes {
                tutors: 400,
                students: 12_000,
                weeks: 26,
                lessons_per_tutor_week: 20,
                invoice_months: 6,
            },
        }
    }
}

const FIRST_NAMES: &[&str] = &[
    "Anna",
    "Piotr",
    "Maria",
    "Krzysztof",
    "Katarzyna",
    "Andrzej",
    "Małgorzata",
    "Tomasz",
    "Agnieszka",
    "Paweł",
    "Barbara",
    "Michał",
    "Ewa",
    "Marcin",
    "Joanna",
    "Jakub",
    "Zofia",
    "Kacper",
    "Julia",
    "Mateusz",
    "Zuzanna",
    "Jan",
    "Hanna",
    "Antoni",
    "Lena",
    "Szymon",
    "Maja",
    "Filip",
    "Alicja",
    "Wojciech",
    "Oliwia",
    "Adam",
    "Natalia",
    "Igor",
    "Aleksandra",
    "Franciszek",
    "Wiktoria",
    "Łukasz",
    "Amelia",
    "Dawid",
];

const LAST_NAMES: &[&str] = &[
    "Nowak",
    "Kowalski",
    "Wiśniewski",
    "Wójcik",
    "Kowalczyk",
    "Kamiński",
    "Lewandowski",
    "Zieliński",
    "Szymański",
    "Woźniak",
    "Dąbrowski",
    "Kozłowski",
    "Jankowski",
    "Mazur",
    "Kwiatkowski",
    "Krawczyk",
    "Piotrowski",
    "Grabowski",
    "Nowakowski",
    "Pawłowski",
    "Michalski",
    "Nowicki",
    "Adamczyk",
    "Dudek",
    "Zając",
    "Wieczorek",
    "Jabłoński",
    "Król",
    "Majewski",
    "Olszewski",
    "Jaworski",
    "Wróbel",
    "Malinowski",
    "Pawlak",
    "Witkowski",
    "Walczak",
    "Stępień",
    "Górski",
    "Rutkowski",
    "Michalak",
];

/// SPEC.md's twelve subjects: name, colour, level.
pub(crate) const SUBJECTS: &[(&str, &str, &str)] = &[
    ("Mathematics", "#1E88E5", "secondary"),
    ("Physics", "#8E24AA", "secondary"),
    ("Chemistry", "#43A047", "secondary"),
    ("Biology", "#7CB342", "secondary"),
    ("English", "#F4511E", "primary"),
    ("Polish", "#E53935", "primary"),
    ("History", "#6D4C41", "secondary"),
    ("Geography", "#00897B", "primary"),
    ("Computer Science", "#3949AB", "matura"),
    ("German", "#B07D00", "primary"),
    ("Spanish", "#FB8C00", "primary"),
    ("Mathematics (extended)", "#0D47A1", "matura"),
];

const TOPICS: &[&str] = &[
    "revision",
    "new material",
    "exam practice",
    "homework review",
    "problem solving",
    "test preparation",
    "reading",
    "project work",
];

const ROOMS: usize = 15;

/// Polish family names in -ski/-cki/-dzki agree with the person: Anna Kowalska,
/// Piotr Kowalski. Every female name in FIRST_NAMES ends in "a", no male one does.
fn surname(first: &str, last: &str) -> String {
    let female = first.ends_with('a');
    match last.strip_suffix("ki") {
        Some(stem)
            if female && (stem.ends_with('s') || stem.ends_with('c') || stem.ends_with("dz")) =>
        {
            format!("{stem}ka")
        }
        _ => last.to_owned(),
    }
}

/// Lesson start hours: 08:00 to 19:00, so a 60-minute lesson ends by 20:00.
const HOURS: [u32; 12] = [8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];

/// Builds the whole set. Password hashes are made by `hash(password, salt)`, once per
/// role (every demo user of a role shares a password; hashing 1,241 times with
/// argon2's memory-hard defaults would take most of a minute).
pub(crate) fn generate(
    opts: &SeedOptions,
    mut hash: impl FnMut(&str, &[u8; 16]) -> crate::DbResult<String>,
) -> crate::DbResult<DemoData> {
    let sizes = opts.scale.sizes();
    let now = opts.now;
    let mut rng = SplitMix64::new(opts.seed);
    let mut salt = || {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        s[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        s
    };
    let admin_hash = hash("admin", &salt())?;
    let tutor_hash = hash("tutor", &salt())?;
    let student_hash = hash("student", &salt())?;

    let mut data = DemoData::default();
    let created =
        |rng: &mut SplitMix64| now.date().and_time(NaiveTime::MIN) - Days::new(30 + rng.below(365));

    data.users.push(NewUser {
        id: 1,
        email: "admin@napiatke.local".into(),
        first_name: "Ada",
        last_name: "Administratorka".to_owned(),
        role: Role::Admin.as_str(),
        is_active: true,
        password_hash: admin_hash,
        created_at: created(&mut rng),
    });

    data.subjects = SUBJECTS
        .iter()
        .zip(1..)
        .map(|(&(name, color, level), id)| NewSubject {
            id,
            name,
            color,
            level,
        })
        .collect();
    data.rooms = (0..ROOMS)
        .map(|i| NewRoom {
            id: i as i64 + 1,
            name: format!("Room {}{:02}", i / 5 + 1, i % 5 + 1),
            capacity: 4 + rng.below(17) as i32,
        })
        .collect();

    let tutor_ids: Vec<i64> = (0..sizes.tutors).map(|i| 2 + i as i64).collect();
    let first_student = 2 + sizes.tutors as i64;
    let student_ids: Vec<i64> = (0..sizes.students)
        .map(|i| first_student + i as i64)
        .collect();

    // Each tutor teaches one or two subjects.
    let mut tutor_subjects: Vec<Vec<usize>> = Vec::with_capacity(sizes.tutors);
    for (n, &id) in tutor_ids.iter().enumerate() {
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        let main = n % SUBJECTS.len();
        let mut subs = vec![main];
        if rng.percent(50) {
            let other = rng.index(SUBJECTS.len());
            if other != main {
                subs.push(other);
            }
        }
        let taught: Vec<&str> = subs.iter().map(|&s| SUBJECTS[s].0).collect();
        data.users.push(NewUser {
            id,
            email: format!("tutor{}@napiatke.local", n + 1),
            first_name: first,
            last_name: surname(first, last),
            role: Role::Tutor.as_str(),
            is_active: true,
            password_hash: tutor_hash.clone(),
            created_at: created(&mut rng),
        });
        data.tutor_profiles.push(NewTutorProfile {
            user_id: id,
            bio: format!("{first} teaches {}.", taught.join(" and ")),
            hourly_rate: (60 + rng.below(141) as i64) * 100,
        });
        tutor_subjects.push(subs);
    }

    for (n, &id) in student_ids.iter().enumerate() {
        let first = rng.pick(FIRST_NAMES);
        let last = rng.pick(LAST_NAMES);
        data.users.push(NewUser {
            id,
            email: format!("student{}@napiatke.local", n + 1),
            first_name: first,
            last_name: surname(first, last),
            role: Role::Student.as_str(),
            is_active: true,
            password_hash: student_hash.clone(),
            created_at: created(&mut rng),
        });
        data.student_profiles.push(NewStudentProfile {
            user_id: id,
            class_name: format!("{}{}", 4 + rng.below(5), ['A', 'B', 'C', 'D'][rng.index(4)]),
            parent_email: format!("parent.student{}@napiatke.local", n + 1),
        });
    }

    // Lessons: the weeks are centred on this (local) week, half before and half
    // after it.
    let zone = opts.zone;
    let today = zone.today(now);
    let this_monday = napiatke_domain::week_start(today);
    let first_monday = this_monday - Days::new(7 * u64::from(sizes.weeks / 2));
    let per_day = sizes.lessons_per_tutor_week.div_ceil(5);
    let (mut lesson_id, mut ls_id, mut att_id) = (0i64, 0i64, 0i64);
    for week in 0..u64::from(sizes.weeks) {
        let monday = first_monday + Days::new(7 * week);
        for (t, &tutor_id) in tutor_ids.iter().enumerate() {
            let mut left = sizes.lessons_per_tutor_week;
            for day in 0..5u64 {
                let date = monday + Days::new(day);
                let today_count = per_day.min(left);
                left -= today_count;
                let mut hours = HOURS;
                // Partial Fisher-Yates: the first `today_count` hours are a random pick.
                for i in 0..today_count {
                    let j = i + rng.index(hours.len() - i);
                    hours.swap(i, j);
                }
                let mut picked = hours[..today_count].to_vec();
                picked.sort_unstable();
                for hour in picked {
                    let start =
                        zone.utc(date.and_time(
                            NaiveTime::from_hms_opt(hour, 0, 0).unwrap_or(NaiveTime::MIN),
                        ));
                    let minutes = if rng.percent(50) { 45 } else { 60 };
                    let end = start + chrono::Duration::minutes(minutes);
                    let subject = rng.pick(&tutor_subjects[t]);
                    let status = if end <= now {
                        if rng.percent(3) {
                            LessonStatus::Cancelled
                        } else {
                            LessonStatus::Completed
                        }
                    } else if start <= now {
                        LessonStatus::Ongoing
                    } else {
                        LessonStatus::Scheduled
                    };
                    let room_id = if rng.percent(90) {
                        Some(1 + rng.below(ROOMS as u64) as i64)
                    } else {
                        None
                    };
                    lesson_id += 1;
                    data.lessons.push(NewLesson {
                        id: lesson_id,
                        title: format!("{}: {}", SUBJECTS[subject].0, rng.pick(TOPICS)),
                        start_time: start,
                        end_time: end,
                        status: status.as_str(),
                        tutor_id,
                        subject_id: subject as i64 + 1,
                        room_id,
                    });
                    let n_students = 1 + rng.index(6);
                    let mut chosen: Vec<i64> = Vec::with_capacity(n_students);
                    while chosen.len() < n_students.min(student_ids.len()) {
                        let s = rng.pick(&student_ids);
                        if !chosen.contains(&s) {
                            chosen.push(s);
                        }
                    }
                    for student_id in chosen {
                        ls_id += 1;
                        data.lesson_students.push(NewLessonStudent {
                            id: ls_id,
                            lesson_id,
                            student_id,
                        });
                        if status == LessonStatus::Completed {
                            let r = rng.below(100);
                            let mark = if r < 85 {
                                AttendanceStatus::Present
                            } else if r < 95 {
                                AttendanceStatus::Absent
                            } else {
                                AttendanceStatus::Late
                            };
                            att_id += 1;
                            data.attendance.push(NewAttendance {
                                id: att_id,
                                lesson_student_id: ls_id,
                                status: mark.as_str(),
                                marked_at: end,
                            });
                        }
                    }
                }
            }
        }
    }

    // Invoices: one per student per month, this month and the ones before it.
    let this_month = today.with_day(1).unwrap_or(today);
    let mut invoice_id = 0i64;
    for &student_id in &student_ids {
        for back in 0..sizes.invoice_months {
            let issued = this_month - Months::new(back);
            let r = rng.below(100);
            let status = if r < 70 {
                InvoiceStatus::Paid
            } else if r < 85 {
                InvoiceStatus::Issued
            } else if r < 95 {
                InvoiceStatus::Overdue
            } else {
                InvoiceStatus::Draft
            };
            invoice_id += 1;
            data.invoices.push(NewInvoice {
                id: invoice_id,
                student_id,
                issued_date: issued,
                status: status.as_str(),
                total_amount: (2 + rng.below(11) as i64) * 50_00,
            });
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Timelike, Weekday};

    #[test]
    fn surnames_agree_with_the_first_name() {
        assert_eq!(surname("Anna", "Kowalski"), "Kowalska");
        assert_eq!(surname("Julia", "Nowicki"), "Nowicka");
        assert_eq!(surname("Zofia", "Zieliński"), "Zielińska");
        assert_eq!(surname("Piotr", "Kowalski"), "Kowalski");
        assert_eq!(surname("Maria", "Nowak"), "Nowak");
        assert!(FIRST_NAMES
            .iter()
            .filter(|n| n.ends_with('a'))
            .all(|n| !["Piotr", "Jan", "Adam"].contains(n)));
    }

    /// The standard set has SPEC.md's shape (generation only, no database).
    #[test]
    fn the_standard_set_matches_spec() {
        let now = NaiveDate::from_ymd_opt(2026, 11, 26)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap_or_default();
        let opts = SeedOptions::new(Scale::Standard, 42, now);
        let d = generate(&opts, |_, _| Ok("hash".to_owned())).unwrap_or_default();
        let by_role = |r: Role| d.users.iter().filter(|u| u.role == r.as_str()).count();
        assert_eq!(
            (
                by_role(Role::Admin),
                by_role(Role::Tutor),
                by_role(Role::Student)
            ),
            (1, 40, 1_200)
        );
        assert_eq!((d.subjects.len(), d.rooms.len()), (12, 15));
        assert_eq!(d.lessons.len(), 20_800);
        assert!(
            (70_000..76_000).contains(&d.lesson_students.len()),
            "{}",
            d.lesson_students.len()
        );
        assert_eq!(d.invoices.len(), 7_200);
        let weeks = (d.lessons.iter().map(|l| l.start_time).max().unwrap_or(now)
            - d.lessons.iter().map(|l| l.start_time).min().unwrap_or(now))
        .num_days();
        assert!(
            (178..=182).contains(&weeks),
            "spread over 26 weeks: {weeks} days"
        );
        for l in &d.lessons {
            // Local weekdays and hours in Warsaw, across both clock changes.
            let (start, end) = (opts.zone.local(l.start_time), opts.zone.local(l.end_time));
            assert!(!matches!(start.weekday(), Weekday::Sat | Weekday::Sun));
            assert!(
                start.hour() >= 8 && end.hour() * 60 + end.minute() <= 20 * 60,
                "{l:?}"
            );
            assert_eq!(start.minute(), 0, "{l:?}");
            assert!(matches!((l.end_time - l.start_time).num_minutes(), 45 | 60));
            let expected_past = l.end_time <= now;
            let past = matches!(l.status, "COMPLETED" | "CANCELLED");
            assert_eq!(past, expected_past, "{l:?}");
        }
        let past = d.lessons.iter().filter(|l| l.end_time <= now).count();
        let cancelled = d.lessons.iter().filter(|l| l.status == "CANCELLED").count();
        let share = |n: usize, of: usize| n as f64 * 100.0 / of as f64;
        assert!(
            (2.0..4.0).contains(&share(cancelled, past)),
            "cancelled {}",
            share(cancelled, past)
        );
        let present = d
            .attendance
            .iter()
            .filter(|a| a.status == "PRESENT")
            .count();
        let absent = d.attendance.iter().filter(|a| a.status == "ABSENT").count();
        let n = d.attendance.len();
        assert!(
            (83.0..87.0).contains(&share(present, n)) && (8.5..11.5).contains(&share(absent, n))
        );
        let paid = d.invoices.iter().filter(|i| i.status == "PAID").count();
        assert!((68.0..72.0).contains(&share(paid, d.invoices.len())));
        let mut per_lesson = std::collections::HashMap::new();
        for p in &d.lesson_students {
            *per_lesson.entry(p.lesson_id).or_insert(0) += 1;
        }
        assert!(per_lesson.values().all(|n| (1..=6).contains(n)));
        assert_eq!(
            per_lesson.len(),
            d.lessons.len(),
            "every lesson has students"
        );
    }
}
