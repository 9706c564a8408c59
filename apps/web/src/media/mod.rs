//! Images in the web shell: the pages with upload forms, the uploads and their status
//! fragment, and the stored variants under /media/.

mod files;
mod pages;
mod uploads;

pub use files::{media, MediaFiles};
pub use pages::{profile, rooms};
pub use uploads::{avatar, image_status, room_photo};
