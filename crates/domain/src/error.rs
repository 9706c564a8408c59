/// What can be wrong with a value handed to the domain.
///
/// Every variant carries the offending input so a person can act on the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A text that names none of an enum's variants.
    #[error("unknown {kind} {value:?}; expected one of {expected}")]
    UnknownVariant {
        /// The enum, in words ("lesson status").
        kind: &'static str,
        /// What was given.
        value: String,
        /// The accepted spellings, comma separated.
        expected: &'static str,
    },
    /// Not an e-mail address.
    #[error("{0:?} is not an e-mail address")]
    InvalidEmail(String),
    /// Not a `#RRGGBB` colour.
    #[error("{0:?} is not a colour of the form #RRGGBB")]
    InvalidColor(String),
    /// An amount of money that cannot be represented or is negative where it must not be.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// Not a time zone of the IANA database.
    #[error("{0:?} is not a time zone name such as Europe/Warsaw")]
    UnknownZone(String),
}
