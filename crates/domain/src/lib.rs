//! napiatke's domain: the entities of a tutoring school (users and their profiles,
//! subjects, rooms, lessons, attendance, invoices), their enums, typed ids and money.
//!
//! Pure data and parsing, no I/O: every other crate speaks these types, and a value
//! that exists has already been validated (an [`Email`] is a plausible address, a
//! [`Color`] is `#RRGGBB`, a status is one of its variants).
//!
//! ```
//! use napiatke_domain::{LessonStatus, Money, Role};
//!
//! assert_eq!("SCHEDULED".parse::<LessonStatus>(), Ok(LessonStatus::Scheduled));
//! assert!("scheduled?".parse::<LessonStatus>().is_err());
//! assert_eq!(Role::Tutor.as_str(), "TUTOR");
//! assert_eq!(Money::from_minor(123_456).to_string(), "1,234.56 PLN");
//! ```

mod entities;
mod enums;
mod error;
mod ids;
mod search;
mod values;
mod zone;

pub use entities::{
    Attendance, ImageVariant, Invoice, Lesson, LessonStudent, Room, StoredImage, StudentProfile,
    Subject, TutorProfile, User,
};
pub use enums::{
    AttendanceStatus, ImageFormat, ImageStatus, InvoiceStatus, LessonStatus, Role, VariantKind,
};
pub use error::DomainError;
pub use ids::{
    AttendanceId, ImageId, InvoiceId, LessonId, LessonStudentId, RoomId, SubjectId, UserId,
};
pub use search::fold_search;
pub use values::{AttendanceRate, Color, Email, Money};
pub use zone::{week_start, Zone};
