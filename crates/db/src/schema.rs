//! The schema both engines share, written by hand with column types that mean the
//! same on SQLite and PostgreSQL (see docs/architecture.md). `tests/schema_parity.rs`
//! migrates both engines and checks their columns against these definitions.

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        first_name -> Text,
        last_name -> Text,
        role -> Text,
        is_active -> Bool,
        password_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    tutor_profiles (user_id) {
        user_id -> BigInt,
        bio -> Text,
        hourly_rate -> BigInt,
    }
}

diesel::table! {
    student_profiles (user_id) {
        user_id -> BigInt,
        class_name -> Text,
        parent_email -> Text,
    }
}

diesel::table! {
    subjects (id) {
        id -> BigInt,
        name -> Text,
        color -> Text,
        level -> Text,
    }
}

diesel::table! {
    rooms (id) {
        id -> BigInt,
        name -> Text,
        capacity -> Integer,
    }
}

diesel::table! {
    lessons (id) {
        id -> BigInt,
        title -> Text,
        start_time -> Timestamp,
        end_time -> Timestamp,
        status -> Text,
        tutor_id -> BigInt,
        subject_id -> BigInt,
        room_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    lesson_students (id) {
        id -> BigInt,
        lesson_id -> BigInt,
        student_id -> BigInt,
    }
}

diesel::table! {
    attendance (id) {
        id -> BigInt,
        lesson_student_id -> BigInt,
        status -> Text,
        marked_at -> Timestamp,
    }
}

diesel::table! {
    invoices (id) {
        id -> BigInt,
        student_id -> BigInt,
        issued_date -> Date,
        status -> Text,
        total_amount -> BigInt,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        csrf_token -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    images (id) {
        id -> BigInt,
        source -> Text,
        original -> Text,
        width -> Integer,
        height -> Integer,
        has_alpha -> Bool,
        placeholder -> Text,
        variants -> Text,
        status -> Text,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        uploaded_by -> Nullable<BigInt>,
        original_bytes -> BigInt,
        stored_bytes -> BigInt,
        replaces -> Nullable<BigInt>,
        unlinked_at -> Nullable<Timestamp>,
        lease_owner -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    periodic_work (name) {
        name -> Text,
        owner -> Text,
        ran_at -> Timestamp,
        due_at -> Timestamp,
    }
}

diesel::table! {
    room_photos (room_id) {
        room_id -> BigInt,
        image_id -> BigInt,
    }
}

diesel::table! {
    user_avatars (user_id) {
        user_id -> BigInt,
        image_id -> BigInt,
    }
}

diesel::table! {
    /// One folded search document per student (name, e-mail, class): a trigram GIN
    /// index on PostgreSQL, an FTS5 trigram table on SQLite. Written by the seed and
    /// [`crate::queries::students::rebuild_search`].
    student_search (user_id) {
        user_id -> BigInt,
        document -> Text,
    }
}

diesel::joinable!(tutor_profiles -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(student_profiles -> users (user_id));
diesel::joinable!(lessons -> users (tutor_id));
diesel::joinable!(lessons -> subjects (subject_id));
diesel::joinable!(lessons -> rooms (room_id));
diesel::joinable!(lesson_students -> lessons (lesson_id));
diesel::joinable!(lesson_students -> users (student_id));
diesel::joinable!(attendance -> lesson_students (lesson_student_id));
diesel::joinable!(invoices -> users (student_id));
diesel::joinable!(room_photos -> rooms (room_id));
diesel::joinable!(room_photos -> images (image_id));
diesel::joinable!(user_avatars -> users (user_id));
diesel::joinable!(user_avatars -> images (image_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    tutor_profiles,
    student_profiles,
    student_search,
    subjects,
    rooms,
    lessons,
    lesson_students,
    attendance,
    invoices,
    sessions,
    images,
    room_photos,
    user_avatars,
    periodic_work,
);

/// Every table, parents before children: the order to insert in (and to empty in reverse).
pub const TABLES: &[&str] = &[
    "users",
    "tutor_profiles",
    "student_profiles",
    "student_search",
    "subjects",
    "rooms",
    "lessons",
    "lesson_students",
    "attendance",
    "invoices",
    "sessions",
    "images",
    "room_photos",
    "user_avatars",
    "periodic_work",
];
