//! The closed sets of SPEC.md, stored as upper-case text with a CHECK constraint on
//! both engines, so the database and the code agree on the same spelling.

use crate::DomainError;

macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $kind:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored spelling (upper case).
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = DomainError;

            /// Accepts the stored spelling only; callers normalise case first if they want to.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(DomainError::UnknownVariant {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: concat!($($text, " "),+).trim_ascii_end(),
                    }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = DomainError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
    };
}

text_enum!(
    /// What a user may do.
    Role, "role" {
        /// Runs the school: sees everything.
        Admin = "ADMIN",
        /// Teaches lessons.
        Tutor = "TUTOR",
        /// Attends lessons; sees only their own.
        Student = "STUDENT",
    }
);

text_enum!(
    /// Where a lesson is in its life.
    LessonStatus, "lesson status" {
        /// Planned, not started.
        Scheduled = "SCHEDULED",
        /// Happening now.
        Ongoing = "ONGOING",
        /// Took place.
        Completed = "COMPLETED",
        /// Will not or did not take place.
        Cancelled = "CANCELLED",
    }
);

text_enum!(
    /// How a student attended a lesson.
    AttendanceStatus, "attendance status" {
        /// There on time.
        Present = "PRESENT",
        /// Not there.
        Absent = "ABSENT",
        /// There, late.
        Late = "LATE",
        /// Not there, with an excuse.
        Excused = "EXCUSED",
    }
);

text_enum!(
    /// Where an invoice is in its life.
    InvoiceStatus, "invoice status" {
        /// Being prepared, not sent.
        Draft = "DRAFT",
        /// Sent, not yet due.
        Issued = "ISSUED",
        /// Paid.
        Paid = "PAID",
        /// Past due and unpaid.
        Overdue = "OVERDUE",
    }
);

text_enum!(
    /// Where an uploaded image is in its processing.
    ImageStatus, "image status" {
        /// Accepted and checked; variants are being made (the placeholder shows).
        Processing = "PROCESSING",
        /// WebP and JPEG variants exist (AVIF may still be on its way).
        Ready = "READY",
        /// Processing failed; the error says why.
        Failed = "FAILED",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_through_its_text() {
        for s in LessonStatus::ALL {
            assert_eq!(s.as_str().parse::<LessonStatus>(), Ok(*s));
        }
        for s in AttendanceStatus::ALL {
            assert_eq!(s.as_str().parse::<AttendanceStatus>(), Ok(*s));
        }
        for s in InvoiceStatus::ALL {
            assert_eq!(s.as_str().parse::<InvoiceStatus>(), Ok(*s));
        }
        for s in Role::ALL {
            assert_eq!(s.as_str().parse::<Role>(), Ok(*s));
        }
        for s in ImageStatus::ALL {
            assert_eq!(s.as_str().parse::<ImageStatus>(), Ok(*s));
        }
    }

    #[test]
    fn unknown_text_names_the_input_and_the_choices() {
        let err = "LOST"
            .parse::<AttendanceStatus>()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown attendance status \"LOST\"; expected one of PRESENT ABSENT LATE EXCUSED")
        );
        assert!("present".parse::<AttendanceStatus>().is_err());
    }
}

/// An image variant's encoding. Serialised as its name ("avif", "webp", "jpeg"): what
/// the images table stores and the image template functions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ImageFormat {
    /// AV1 still image: the smallest.
    #[serde(rename = "avif")]
    Avif,
    /// Lossy WebP.
    #[serde(rename = "webp")]
    WebP,
    /// Progressive JPEG: the fallback every browser reads (no alpha: flattened onto
    /// white).
    #[serde(rename = "jpeg")]
    Jpeg,
}

impl ImageFormat {
    /// Every output format, best first (the order of `<source>` elements).
    pub const ALL: [ImageFormat; 3] = [ImageFormat::Avif, ImageFormat::WebP, ImageFormat::Jpeg];

    /// Its name ("avif", "webp", "jpeg").
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            ImageFormat::Avif => "avif",
            ImageFormat::WebP => "webp",
            ImageFormat::Jpeg => "jpeg",
        }
    }

    /// The Content-Type.
    #[must_use]
    pub const fn mime(self) -> &'static str {
        match self {
            ImageFormat::Avif => "image/avif",
            ImageFormat::WebP => "image/webp",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }

    /// The file extension.
    #[must_use]
    pub const fn extension(self) -> &'static str {
        match self {
            ImageFormat::Avif => "avif",
            ImageFormat::WebP => "webp",
            ImageFormat::Jpeg => "jpg",
        }
    }
}

/// What an image variant is for. Serialised as "width" or "thumbnail".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VariantKind {
    /// A step of the width ladder (srcset).
    Width,
    /// The square thumbnail.
    Thumbnail,
}
