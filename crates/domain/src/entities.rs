//! One struct per table of SPEC.md. Times are UTC without a zone attached
//! (`NaiveDateTime`), as both engines store them.

use chrono::{NaiveDate, NaiveDateTime};

use crate::{
    AttendanceId, AttendanceStatus, Color, Email, ImageId, ImageStatus, InvoiceId, InvoiceStatus,
    LessonId, LessonStatus, LessonStudentId, Money, Role, RoomId, SubjectId, UserId,
};

/// A person who can log in.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct User {
    /// Key.
    pub id: UserId,
    /// Unique, normalised.
    pub email: Email,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// What they may do.
    pub role: Role,
    /// Inactive users cannot log in and are left out of counts.
    pub is_active: bool,
    /// When the account was made (UTC).
    pub created_at: NaiveDateTime,
}

impl User {
    /// "First Last".
    #[must_use]
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// What a tutor adds to their user.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TutorProfile {
    /// The tutor (one profile each).
    pub user_id: UserId,
    /// Free text.
    pub bio: String,
    /// Per hour.
    pub hourly_rate: Money,
}

/// What a student adds to their user.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StudentProfile {
    /// The student (one profile each).
    pub user_id: UserId,
    /// School class, e.g. "7A".
    pub class_name: String,
    /// Where reports go.
    pub parent_email: Email,
}

/// Something taught.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Subject {
    /// Key.
    pub id: SubjectId,
    /// "Mathematics".
    pub name: String,
    /// Drawn in this colour.
    pub color: Color,
    /// "primary", "secondary", "matura".
    pub level: String,
}

/// A place lessons happen.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Room {
    /// Key.
    pub id: RoomId,
    /// "Room 101".
    pub name: String,
    /// Seats.
    pub capacity: i32,
}

/// One lesson: a tutor, a subject, maybe a room, a time.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lesson {
    /// Key.
    pub id: LessonId,
    /// Shown in lists.
    pub title: String,
    /// UTC.
    pub start_time: NaiveDateTime,
    /// UTC, after `start_time`.
    pub end_time: NaiveDateTime,
    /// Life-cycle state.
    pub status: LessonStatus,
    /// Who teaches.
    pub tutor_id: UserId,
    /// What is taught.
    pub subject_id: SubjectId,
    /// Where; `None` for online lessons.
    pub room_id: Option<RoomId>,
}

/// A student's place in a lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LessonStudent {
    /// Key.
    pub id: LessonStudentId,
    /// The lesson.
    pub lesson_id: LessonId,
    /// The student.
    pub student_id: UserId,
}

/// How a student attended; at most one per [`LessonStudent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attendance {
    /// Key.
    pub id: AttendanceId,
    /// The place it marks.
    pub lesson_student_id: LessonStudentId,
    /// The mark.
    pub status: AttendanceStatus,
    /// When it was marked (UTC).
    pub marked_at: NaiveDateTime,
}

/// A bill to a student.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Invoice {
    /// Key.
    pub id: InvoiceId,
    /// Who pays.
    pub student_id: UserId,
    /// Date of issue.
    pub issued_date: NaiveDate,
    /// Life-cycle state.
    pub status: InvoiceStatus,
    /// In grosze.
    pub total_amount: Money,
}

/// An uploaded image as pages show it: its size (so nothing shifts while it loads), a
/// blur placeholder to show at once, and the variants made so far. Serialised, it is
/// what the `responsive_image` and `lazy_image` template functions take.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredImage {
    /// Key.
    pub id: ImageId,
    /// Pixels across, upright.
    pub width: u32,
    /// Pixels down, upright.
    pub height: u32,
    /// Whether any pixel is transparent.
    pub has_alpha: bool,
    /// A tiny blurred WebP as a data URI.
    pub placeholder: String,
    /// Processing, ready or failed.
    pub status: ImageStatus,
    /// Every variant made so far.
    pub variants: Vec<ImageVariant>,
}

impl StoredImage {
    /// Changes whenever what a page would show of the image changes (status and
    /// variant names): part of the key of rendered HTML that shows it.
    #[must_use]
    pub fn version(&self) -> String {
        // FNV-1a over the paths: reprocessing with new options changes the names (and
        // so the URLs a page must show) without changing their number.
        use std::hash::Hasher;
        let mut h = fnv::FnvHasher::default();
        for v in &self.variants {
            h.write(v.path.as_bytes());
            h.write(&[0]);
        }
        format!("{}.{}.{:016x}", self.id, self.status.as_str(), h.finish())
    }
}

/// One stored variant of an image.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageVariant {
    /// Storage name; its URL is `/media/{path}`.
    pub path: String,
    /// Its encoding.
    pub format: crate::ImageFormat,
    /// A srcset step or the (square) thumbnail.
    pub kind: crate::VariantKind,
    /// Pixels across.
    pub width: u32,
    /// Pixels down.
    pub height: u32,
    /// Encoded size.
    pub bytes: u64,
    /// The encoder quality (1–100) it was made at, when known (rows written before
    /// issue 16 have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
    /// Its SSIMULACRA2 score against the resized source, when it was searched for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}
