//! Typed ids: a lesson id cannot be passed where a user id is expected.

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw database key.
            #[must_use]
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(raw: i64) -> Self {
                Self(raw)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

id_type!(
    /// A row of `users` (admin, tutor or student).
    UserId
);
id_type!(
    /// A row of `subjects`.
    SubjectId
);
id_type!(
    /// A row of `rooms`.
    RoomId
);
id_type!(
    /// A row of `lessons`.
    LessonId
);
id_type!(
    /// A row of `lesson_students`: one student's place in one lesson.
    LessonStudentId
);
id_type!(
    /// A row of `attendance`.
    AttendanceId
);
id_type!(
    /// A row of `invoices`.
    InvoiceId
);
id_type!(
    /// A row of `images`: one upload and its variants.
    ImageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_print_as_their_number() {
        let id: LessonId = "42".parse().unwrap_or(LessonId(0));
        assert_eq!(id, LessonId(42));
        assert_eq!(id.to_string(), "42");
        assert!("4x".parse::<LessonId>().is_err());
    }
}
