//! Image uploads: room photos (admins) and avatars (everyone, their own).
//!
//! An upload is checked and decoded on the request (limits first, so a bomb costs
//! nothing), its placeholder made, the original stored and a PROCESSING row written;
//! the answer goes back at once. The variants are made by the image worker pool: WebP
//! and JPEG first (the image is then READY and shown), AVIF after. Each phase updates
//! the row and invalidates exactly what shows the image.
//!
//! Bounded per user: a few uploads in progress at once (IMAGE_USER_QUEUE) and a
//! number of stored bytes (IMAGE_USER_BYTES: originals and variants of the images
//! they uploaded that are still kept). A replaced image is kept for a grace period
//! (IMAGE_GC_GRACE; pages and browsers may still show it) and then collected, its
//! files with it ([`Services::collect_images`]); a replacement that fails gives the
//! owner the old image back. Storage that is full (or would go below MEDIA_KEEP_FREE)
//! refuses the upload before anything is written.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use napiatke_db::queries::images::{self as image_rows, NewImage, Owner};
use napiatke_db::queries::leases::{self, Lease};
use napiatke_domain::{
    ImageId, ImageStatus, ImageVariant, Role, Room, RoomId, StoredImage, User, UserId,
};
use napiatke_images::jobs::{PoolStats, Slot, WorkerPool};
use napiatke_images::pipeline::{self, LocalStorage, Made, Storage};
use napiatke_images::variants::{Format, Options};
use napiatke_images::{ImageError, Limits};
use serde::Serialize;

use crate::cached::{avatar_key, ROOM_PHOTOS_KEY};
use crate::{ServiceError, ServiceResult, Services};

/// How uploads are handled (configuration: MEDIA_ROOT, MEDIA_KEEP_FREE,
/// IMAGE_MAX_BYTES, IMAGE_MAX_PIXELS, IMAGE_WORKERS, IMAGE_QUEUE, IMAGE_USER_QUEUE,
/// IMAGE_USER_BYTES, IMAGE_GC_GRACE).
#[derive(Debug, Clone)]
pub struct ImageConfig {
    /// Where originals and variants are stored, when `storage` is `None`.
    pub media_root: PathBuf,
    /// Another store for originals and variants (MEDIA_STORAGE=s3: a bucket shared
    /// by every machine); `None`: files under `media_root`, keeping `keep_free`.
    pub storage: Option<Arc<dyn Storage>>,
    /// What an upload may be.
    pub limits: Limits,
    /// Which variants, at what quality.
    pub options: Options,
    /// Worker threads (one per core by default).
    pub workers: usize,
    /// Places in the queue.
    pub queue: usize,
    /// Uploads one user may have in progress at once (read or queued).
    pub user_queue: usize,
    /// Bytes one user's kept images may take (originals and variants, replaced ones
    /// until they are collected).
    pub user_bytes: u64,
    /// Free bytes kept on MEDIA_ROOT's file system (0: none).
    pub keep_free: u64,
    /// How long a replaced image is kept before it is collected.
    pub gc_grace: Duration,
    /// How long a job is this process's without being renewed (IMAGE_JOB_LEASE): a
    /// job whose process stopped is taken by another this long after its last
    /// renewal. Renewed every third of it.
    pub job_lease: Duration,
}

impl ImageConfig {
    /// Encodes every variant to `target` SSIMULACRA2 (`None`: the fixed qualities).
    #[must_use]
    pub fn with_target(mut self, target: Option<f32>) -> ImageConfig {
        self.options.target = target;
        self
    }

    /// Defaults under `media_root`: the limits, one worker per core, twice as
    /// many places.
    #[must_use]
    pub fn new(media_root: impl Into<PathBuf>) -> ImageConfig {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        ImageConfig {
            media_root: media_root.into(),
            storage: None,
            limits: Limits::default(),
            options: Options::default(),
            workers: cores,
            queue: cores * 2,
            user_queue: 2,
            user_bytes: 512 * 1024 * 1024,
            keep_free: 256 * 1024 * 1024,
            gc_grace: Duration::from_secs(24 * 3600),
            job_lease: Duration::from_secs(60),
        }
    }
}

pub(crate) struct Uploads {
    storage: Arc<dyn Storage>,
    limits: Limits,
    options: Options,
    pool: WorkerPool,
    user_queue: usize,
    user_bytes: u64,
    gc_grace: Duration,
    /// Uploads in progress per user (in this process).
    in_progress: Arc<Mutex<HashMap<UserId, usize>>>,
    job_lease: Duration,
    /// The image jobs this process holds (queued or running): their leases are
    /// renewed until they end.
    held: Arc<Mutex<HashSet<ImageId>>>,
}

impl Uploads {
    pub(crate) fn new(config: &ImageConfig) -> Uploads {
        Uploads {
            storage: config.storage.clone().unwrap_or_else(|| {
                Arc::new(LocalStorage::new(&config.media_root).keeping_free(config.keep_free))
            }),
            limits: config.limits,
            options: config.options.clone(),
            pool: WorkerPool::new(config.workers, config.queue),
            user_queue: config.user_queue.max(1),
            user_bytes: config.user_bytes,
            gc_grace: config.gc_grace,
            in_progress: Arc::default(),
            job_lease: config.job_lease.max(Duration::from_secs(1)),
            held: Arc::default(),
        }
    }

    /// Marks `id` as held here until the returned guard is dropped (its job ended).
    fn hold(&self, id: ImageId) -> Held {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
        Held {
            held: Arc::clone(&self.held),
            id,
        }
    }
}

/// An image job this process holds; dropped when the job ends, however it ends.
#[derive(Debug)]
struct Held {
    held: Arc<Mutex<HashSet<ImageId>>>,
    id: ImageId,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// One of a user's places, given back when the upload ends (refused, or its job
/// done).
#[derive(Debug)]
struct UserPlace {
    counts: Arc<Mutex<HashMap<UserId, usize>>>,
    user: UserId,
}

impl Drop for UserPlace {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user);
            }
        }
    }
}

/// What [`Services::collect_images`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Images found unlinked for the first time (their grace period starts).
    pub unlinked: usize,
    /// Images whose grace period had passed, removed with their rows.
    pub images: usize,
    /// Files removed.
    pub files: usize,
    /// Bytes those files held.
    pub bytes: u64,
    /// Files that could not be removed (logged; tried again next time only if
    /// another image still names them, so they are left to `images reprocess`).
    pub failed: usize,
}

/// `now` plus a lease (saturating: a lease of years is "for ever", not an error).
fn lease_end(now: chrono::NaiveDateTime, lease: Duration) -> chrono::NaiveDateTime {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(chrono::NaiveDateTime::MAX)
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

fn storage_error(storage: &dyn Storage, path: &str, source: std::io::Error) -> ServiceError {
    if pipeline::is_full(&source) {
        tracing::error!(path, error = %source, "media storage is full: upload refused");
        ServiceError::StorageFull(source)
    } else if storage.is_unavailable(&source) {
        tracing::error!(path, error = %source, "media storage unavailable: upload refused");
        ServiceError::StorageUnavailable(source)
    } else {
        ServiceError::Storage {
            path: path.to_owned(),
            source,
        }
    }
}

/// What an upload is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadTarget {
    /// A room's photo (admins).
    RoomPhoto(RoomId),
    /// The uploader's own avatar.
    Avatar,
}

/// A place in the image queue and one of the uploader's, held while the upload is
/// read and until its job is done.
#[derive(Debug)]
pub struct UploadSlot {
    slot: Slot,
    user: UserPlace,
}

/// A room and its current photo, as GET /rooms/ shows them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RoomCard {
    /// The room.
    pub room: Room,
    /// Its photo, if one was uploaded.
    pub photo: Option<StoredImage>,
}

/// What `napiatke images reprocess` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReprocessReport {
    /// Images seen.
    pub images: usize,
    /// Variants written anew.
    pub made: usize,
    /// Variants already stored (reprocessing is idempotent).
    pub reused: usize,
    /// Images that failed (their rows say why).
    pub failed: usize,
}

/// What one image's job did.
#[derive(Debug, Default)]
struct JobOutcome {
    /// Variants written anew.
    made: usize,
    /// Variants already stored.
    reused: usize,
    /// Why it failed (recorded on the row too).
    error: Option<String>,
}

fn image_error(e: ImageError) -> ServiceError {
    match e {
        e @ ImageError::Encode(_) => ServiceError::Image(e),
        other => ServiceError::BadImage(other),
    }
}

/// A phase's variants as the row records them. A variant already stored (so not
/// encoded again) keeps the quality and score `known` (the row's before) gave it.
fn to_variants(made: &Made, known: &[ImageVariant]) -> Vec<ImageVariant> {
    made.variants
        .iter()
        .map(|v| {
            let before = known.iter().find(|k| k.path == v.path);
            ImageVariant {
                path: v.path.clone(),
                format: v.format,
                kind: v.kind,
                width: v.width,
                height: v.height,
                bytes: v.bytes as u64,
                quality: v.quality.or_else(|| before.and_then(|k| k.quality)),
                score: v.score.or_else(|| before.and_then(|k| k.score)),
            }
        })
        .collect()
}

impl Services {
    /// Handles uploads with `config` (without it, uploads answer 503).
    #[must_use]
    pub fn with_images(mut self, config: &ImageConfig) -> Services {
        self.uploads = Some(Arc::new(Uploads::new(config)));
        self
    }

    fn uploads(&self) -> ServiceResult<&Arc<Uploads>> {
        self.uploads.as_ref().ok_or(ServiceError::UploadsOff)
    }

    /// The image worker pool's figures, when uploads are configured.
    #[must_use]
    pub fn image_pool_stats(&self) -> Option<PoolStats> {
        self.uploads.as_ref().map(|u| u.pool.stats())
    }

    /// Waits until the image workers are idle or `timeout` passes (tests, shutdown).
    pub async fn images_idle(&self, timeout: Duration) -> bool {
        let Some(uploads) = self.uploads.clone() else {
            return true;
        };
        tokio::task::spawn_blocking(move || uploads.pool.wait_idle(timeout))
            .await
            .unwrap_or(false)
    }

    /// Whether `user` may upload for `target`: a room photo is an admin's to set and
    /// the room must exist; an avatar is always the uploader's own. Checked before the
    /// upload is read.
    #[tracing::instrument(level = "trace", name = "service.authorize_upload", skip_all)]
    pub async fn authorize_upload(&self, user: &User, target: UploadTarget) -> ServiceResult<()> {
        if let UploadTarget::RoomPhoto(room) = target {
            if user.role != Role::Admin {
                return Err(ServiceError::Forbidden(
                    "only administrators may change a room's photo".to_owned(),
                ));
            }
            if !self.rooms().await?.iter().any(|r| r.id == room) {
                return Err(ServiceError::NotFound(format!("there is no room {room}")));
            }
        }
        Ok(())
    }

    /// Reserves one of `user`'s places ([`ServiceError::OverLimit`] when they have
    /// IMAGE_USER_QUEUE uploads in progress) and a place in the image queue
    /// ([`ServiceError::Busy`] when it is full). Take it before reading the upload.
    pub fn reserve_upload(&self, user: &User) -> ServiceResult<UploadSlot> {
        let uploads = self.uploads()?;
        let place = {
            let mut counts = uploads
                .in_progress
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let n = counts.entry(user.id).or_insert(0);
            if *n >= uploads.user_queue {
                return Err(ServiceError::OverLimit {
                    message: format!(
                        "You have {n} uploads in progress, the most at once. \
                         Try again when one has finished."
                    ),
                    retry_after: Duration::from_secs(5),
                });
            }
            *n += 1;
            UserPlace {
                counts: Arc::clone(&uploads.in_progress),
                user: user.id,
            }
        };
        let slot = uploads
            .pool
            .try_reserve()
            .map_err(|full| ServiceError::Busy {
                message: full.to_string(),
                retry_after: full.retry_after,
            })?;
        Ok(UploadSlot { slot, user: place })
    }

    /// Accepts an upload: checks and decodes it (a 400 naming what is wrong if it is
    /// not an image we take), stores the original, records the image as PROCESSING for
    /// its owner and queues its variants. Returns at once with the placeholder.
    #[tracing::instrument(level = "trace", name = "service.upload_image", skip_all)]
    pub async fn upload_image(
        &self,
        user: &User,
        target: UploadTarget,
        slot: UploadSlot,
        bytes: Vec<u8>,
    ) -> ServiceResult<StoredImage> {
        self.authorize_upload(user, target).await?;
        let uploads = Arc::clone(self.uploads()?);
        let owner = match target {
            UploadTarget::RoomPhoto(room) => Owner::Room(room),
            UploadTarget::Avatar => Owner::User(user.id),
        };
        let uploader = user.id;
        let runtime = tokio::runtime::Handle::current();
        self.detached(move |s| async move {
            let (image, bytes) = s
                .blocking(move |s| {
                    let used = image_rows::stored_by(&mut *s.conn()?, uploader)?;
                    let size = bytes.len() as u64;
                    if used.saturating_add(size) > uploads.user_bytes {
                        return Err(ServiceError::OverLimit {
                            message: format!(
                                "Your images take {} of the {} you may store, and this one \
                                 is {}. Replaced images are removed {} hours after they \
                                 stop being shown; try again then, or send a smaller file.",
                                megabytes(used),
                                megabytes(uploads.user_bytes),
                                megabytes(size),
                                uploads.gc_grace.as_secs().div_ceil(3600),
                            ),
                            retry_after: uploads.gc_grace,
                        });
                    }
                    let prepared =
                        pipeline::prepare(&bytes, &uploads.limits).map_err(image_error)?;
                    let original =
                        format!("originals/{}/{}", &prepared.source[..2], prepared.source);
                    uploads
                        .storage
                        .put(&original, &bytes)
                        .map_err(|e| storage_error(&*uploads.storage, &original, e))?;
                    let now = s.now();
                    let image = image_rows::create(
                        &mut *s.conn()?,
                        &NewImage {
                            source: &prepared.source,
                            original: &original,
                            width: prepared.decoded.width(),
                            height: prepared.decoded.height(),
                            has_alpha: prepared.decoded.has_alpha,
                            placeholder: &prepared.placeholder,
                            uploaded_by: Some(uploader),
                            bytes: size,
                            lease: Some(Lease {
                                owner: &s.instance,
                                until: lease_end(now, uploads.job_lease),
                            }),
                        },
                        owner,
                        now,
                    )?;
                    Ok((image, bytes))
                })
                .await?;
            s.image_changed(owner).await;
            let job = s.clone();
            let id = image.id;
            let span = job_span(id);
            let UploadSlot { slot, user: place } = slot;
            let held = s.uploads()?.hold(id);
            slot.submit(move || {
                let _in = span.enter();
                job.make_variants(&runtime, id, Some(owner), Ok(bytes));
                drop((place, held));
            });
            Ok(image)
        })
        .await
    }

    /// One image's job, on an image worker (uploads, resumed jobs) or the blocking
    /// pool (reprocessing): WebP and JPEG, then AVIF, recording each phase and
    /// invalidating what shows the image (when it still has an owner). A source that
    /// could not be read, a failed phase or a panic is recorded too, so no image is
    /// left PROCESSING; an image that failed with nothing to show gives its owner the
    /// image it replaced back.
    fn make_variants(
        &self,
        runtime: &tokio::runtime::Handle,
        id: ImageId,
        owner: Option<Owner>,
        source: Result<Vec<u8>, String>,
    ) -> JobOutcome {
        let record = |variants: &[ImageVariant], status, error: Option<&str>| {
            let saved = self.conn().and_then(|mut c| {
                Ok(image_rows::set_variants(
                    &mut c,
                    id,
                    variants,
                    status,
                    error,
                    self.now(),
                )?)
            });
            if let Err(e) = saved {
                tracing::error!(image = %id, error = %e, "recording image variants failed");
            }
            let Some(owner) = owner else { return };
            // The runtime is the one that took the upload: if it has shut down since,
            // block_on panics; the row is written, so the TTL mends the cache.
            let invalidated = catch_unwind(AssertUnwindSafe(|| {
                runtime.block_on(self.image_changed(owner));
            }));
            if invalidated.is_err() {
                tracing::warn!(image = %id, "image invalidation skipped: runtime gone");
            }
        };
        let mut outcome = JobOutcome::default();
        let mut made: Vec<ImageVariant> = Vec::new();
        let result = match (self.uploads(), source) {
            (Err(e), _) => Err(e.to_string()),
            (_, Err(e)) => Err(e),
            (Ok(uploads), Ok(bytes)) => catch_unwind(AssertUnwindSafe(|| {
                // Decoded again here rather than carried from the request: a queued
                // job then holds the compressed upload (at most IMAGE_MAX_BYTES), not
                // its pixels (up to 200 MB at 50 megapixels).
                let prepared = tracing::trace_span!("image.decode", otel.name = "image decode")
                    .in_scope(|| pipeline::prepare(&bytes, &uploads.limits))?;
                // What the row says already (reprocessing): a variant found stored
                // keeps the quality and score it was made with.
                let known = self
                    .conn()
                    .ok()
                    .and_then(|mut c| image_rows::get(&mut c, id).ok())
                    .map(|image| image.variants)
                    .unwrap_or_default();
                let mut earlier: Vec<pipeline::VariantInfo> = Vec::new();
                for phase in [&[Format::WebP, Format::Jpeg][..], &[Format::Avif]] {
                    let _phase = tracing::trace_span!(
                        "image.encode",
                        otel.name = if phase.contains(&Format::Avif) {
                            "image encode avif"
                        } else {
                            "image encode webp+jpeg"
                        },
                    )
                    .entered();
                    let phase_made = pipeline::make_variants(
                        &prepared,
                        &uploads.options,
                        phase,
                        &*uploads.storage,
                        &earlier,
                    )?;
                    outcome.reused += phase_made.reused;
                    outcome.made += phase_made.variants.len() - phase_made.reused;
                    for skip in &phase_made.skipped {
                        tracing::info!(
                            image = %id,
                            format = ?skip.format,
                            bytes = skip.bytes,
                            webp_bytes = skip.against,
                            "not made: it would save less than 10 % against WebP at the target quality"
                        );
                    }
                    if !phase_made.tries.is_empty() {
                        let ms = |d: std::time::Duration| d.as_millis() as u64;
                        tracing::info!(
                            image = %id,
                            formats = ?phase,
                            encodings = phase_made.tries.len(),
                            encode_ms = ms(phase_made.tries.iter().map(|t| t.encode).sum()),
                            judge_ms = ms(phase_made.tries.iter().map(|t| t.judge).sum()),
                            "target quality search"
                        );
                    }
                    made.extend(to_variants(&phase_made, &known));
                    earlier.extend(phase_made.variants);
                    record(&made, ImageStatus::Ready, None);
                }
                Ok::<(), ImageError>(())
            }))
            // A panic (an encoder bug on some input) must still end in a recorded
            // status, or the page would poll a PROCESSING image forever.
            .unwrap_or_else(|_| Err(ImageError::Encode("the encoder crashed".to_owned())))
            .map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            tracing::error!(image = %id, error = %e, "image processing failed");
            let status = if made.is_empty() {
                if let Some(owner) = owner {
                    match self
                        .conn()
                        .and_then(|mut c| Ok(image_rows::restore_replaced(&mut c, id, owner)?))
                    {
                        Ok(Some(previous)) => tracing::warn!(
                            image = %id, %previous, "replacement failed: the previous image is shown again"
                        ),
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(image = %id, error = %e, "restoring the replaced image failed")
                        }
                    }
                }
                ImageStatus::Failed
            } else {
                ImageStatus::Ready
            };
            record(&made, status, Some(&e));
            outcome.error = Some(e);
        }
        // Every phase is recorded: no process is to take this job up again. (Until
        // here a READY image whose AVIF phase was cut off with its process is still
        // claimable: see `resume_images`.)
        let finished = self
            .conn()
            .and_then(|mut c| Ok(leases::finish_image(&mut c, id)?));
        if let Err(e) = finished {
            tracing::error!(image = %id, error = %e, "ending the image job's lease failed");
        }
        outcome
    }

    /// An image's owner and its original's bytes (or why they cannot be read), for
    /// jobs that start from what is stored. One statement and one read.
    async fn stored_source(
        &self,
        id: ImageId,
        original: String,
    ) -> ServiceResult<(Option<Owner>, Result<Vec<u8>, String>)> {
        let storage = self.uploads()?.storage.clone();
        self.blocking(move |s| {
            let owner = image_rows::owner(&mut *s.conn()?, id)?;
            let bytes = storage
                .get(&original)
                .map_err(|e| format!("reading {original}: {e}"));
            Ok((owner, bytes))
        })
        .await
    }

    /// One image, for its status while it is processed: to an admin, to anyone for a
    /// room's current photo, to its owner for an avatar; otherwise (someone else's
    /// avatar, a replaced image) it does not exist. Two statements at most, uncached:
    /// it changes under the poller.
    #[tracing::instrument(level = "trace", name = "service.image", skip_all)]
    pub async fn image(&self, user: &User, id: ImageId) -> ServiceResult<StoredImage> {
        let (role, me) = (user.role, user.id);
        let missing = move || ServiceError::NotFound(format!("there is no image {id}"));
        self.blocking(move |s| {
            let mut conn = s.conn()?;
            let image = image_rows::get(&mut conn, id).map_err(|e| match e {
                napiatke_db::DbError::NotFound => missing(),
                other => other.into(),
            })?;
            let visible = role == Role::Admin
                || match image_rows::owner(&mut conn, id)? {
                    Some(Owner::Room(_)) => true,
                    Some(Owner::User(owner)) => owner == me,
                    None => false,
                };
            if visible {
                Ok(image)
            } else {
                Err(missing())
            }
        })
        .await
    }

    /// Claims and queues the image jobs no live process holds: those a stopped
    /// process left unfinished (their jobs lived in its memory: PROCESSING, or READY
    /// with the AVIF phase cut off), once their lease has run out. A job taken up
    /// again reuses every variant already stored, so what shows does not change
    /// until the missing phase is recorded. One claim per free place in the queue, so what is left waits for the
    /// next call; in a cluster each job is claimed by one process
    /// ([`leases::claim_images`]). Call at start and then every third of the lease,
    /// after [`Services::renew_image_leases`].
    #[tracing::instrument(level = "trace", name = "service.resume_images", skip_all)]
    pub async fn resume_images(&self) -> ServiceResult<usize> {
        let uploads = Arc::clone(self.uploads()?);
        let runtime = tokio::runtime::Handle::current();
        let mut queued = 0;
        while let Ok(slot) = uploads.pool.try_reserve() {
            let lease = uploads.job_lease;
            let claimed = self
                .blocking(move |s| {
                    let now = s.now();
                    let until = lease_end(now, lease);
                    let lease = Lease {
                        owner: &s.instance,
                        until,
                    };
                    Ok(leases::claim_images(&mut *s.conn()?, lease, now, 1)?)
                })
                .await?;
            let Some(job) = claimed.into_iter().next() else {
                break;
            };
            let (id, status) = (job.id, job.status);
            tracing::info!(image = %id, %status, "image job claimed");
            let held = uploads.hold(id);
            match self.stored_source(id, job.original).await? {
                (None, _) => {
                    // Replaced meanwhile: nothing shows it, nothing to make. A READY
                    // one keeps what it has (the collector removes it).
                    self.blocking(move |s| {
                        let now = s.now();
                        let mut conn = s.conn()?;
                        if status == ImageStatus::Processing {
                            image_rows::set_variants(
                                &mut conn,
                                id,
                                &[],
                                ImageStatus::Failed,
                                Some("replaced"),
                                now,
                            )?;
                        }
                        Ok(leases::finish_image(&mut conn, id)?)
                    })
                    .await?;
                }
                (owner, source) => {
                    let (job, runtime) = (self.clone(), runtime.clone());
                    let span = job_span(id);
                    slot.submit(move || {
                        let _in = span.enter();
                        job.make_variants(&runtime, id, owner, source);
                        drop(held);
                    });
                    queued += 1;
                }
            }
        }
        Ok(queued)
    }

    /// Extends the leases of the image jobs this process holds (queued or running),
    /// so no other process claims them. Returns how many were extended. One
    /// statement; none when nothing is held.
    pub async fn renew_image_leases(&self) -> ServiceResult<usize> {
        let uploads = Arc::clone(self.uploads()?);
        let ids: Vec<ImageId> = uploads
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let lease = uploads.job_lease;
        self.blocking(move |s| {
            let until = lease_end(s.now(), lease);
            let lease = Lease {
                owner: &s.instance,
                until,
            };
            Ok(leases::renew_images(&mut *s.conn()?, lease, &ids)?)
        })
        .await
    }

    /// How often [`Services::renew_image_leases`] and [`Services::resume_images`]
    /// should run: a third of IMAGE_JOB_LEASE.
    pub fn image_lease_check(&self) -> Option<Duration> {
        self.uploads.as_ref().map(|u| u.job_lease / 3)
    }

    /// Every room with its photo (cached, static class; invalidated by uploads).
    #[tracing::instrument(level = "trace", name = "service.rooms_with_photos", skip_all)]
    pub async fn rooms_with_photos(&self) -> ServiceResult<Arc<Vec<RoomCard>>> {
        self.cache
            .get_or_compute(&self.ns.catalog, ROOM_PHOTOS_KEY, || {
                self.blocking(|s| {
                    Ok(image_rows::rooms_with_photos(&mut *s.conn()?)?
                        .into_iter()
                        .map(|(room, photo)| RoomCard { room, photo })
                        .collect())
                })
            })
            .await
            .map_err(ServiceError::from)
    }

    /// The avatars of these users (those without one are absent). Cached per user;
    /// one statement for all those not cached, none when all are.
    #[tracing::instrument(level = "trace", name = "service.avatars", skip_all)]
    pub async fn avatars(&self, users: &[UserId]) -> ServiceResult<HashMap<UserId, StoredImage>> {
        let keys: Vec<String> = users.iter().map(|&u| avatar_key(u)).collect();
        let found = self
            .cache
            .get_or_compute_many(&self.ns.avatar, &keys, |missing: Vec<usize>| {
                let wanted: Vec<UserId> = missing.iter().map(|&i| users[i]).collect();
                self.blocking(move |s| {
                    let mut found = image_rows::avatars(&mut *s.conn()?, &wanted)?;
                    // No avatar is an answer too, cached like the others.
                    Ok(wanted.iter().map(|u| found.remove(u)).collect())
                })
            })
            .await?;
        Ok(users
            .iter()
            .zip(found)
            .filter_map(|(&u, a)| a.and_then(|a| (*a).clone()).map(|a| (u, a)))
            .collect())
    }

    /// Makes every variant of every stored image again from its original, with the
    /// current options (variants already stored are kept: idempotent). Calls
    /// `progress(done, total)` after each image.
    #[tracing::instrument(level = "trace", name = "service.reprocess_images", skip_all)]
    pub async fn reprocess_images(
        &self,
        mut progress: impl FnMut(usize, usize),
    ) -> ServiceResult<ReprocessReport> {
        self.uploads()?;
        let originals = self
            .blocking(|s| Ok(image_rows::originals(&mut *s.conn()?)?))
            .await?;
        let mut report = ReprocessReport {
            images: originals.len(),
            ..ReprocessReport::default()
        };
        let runtime = tokio::runtime::Handle::current();
        for (n, (id, original)) in originals.into_iter().enumerate() {
            let (owner, source) = self.stored_source(id, original).await?;
            let runtime = runtime.clone();
            let outcome = self
                .blocking(move |s| Ok(s.make_variants(&runtime, id, owner, source)))
                .await?;
            report.made += outcome.made;
            report.reused += outcome.reused;
            if let Some(e) = outcome.error {
                tracing::warn!(image = %id, error = %e, "reprocessing failed");
                report.failed += 1;
            }
            progress(n + 1, report.images);
        }
        Ok(report)
    }
}

impl Services {
    /// Collects replaced images: stamps the images nothing shows any more (their
    /// grace period starts), then removes those stamped more than IMAGE_GC_GRACE
    /// ago (`grace` overrides it) with their files, keeping every file another
    /// image still names. Idempotent and safe to run from several processes (a file
    /// already gone counts as removed by the other).
    ///
    /// A photo uploaded again between the check and the removal could lose its
    /// shared original for a moment; its job holds the bytes in memory, and
    /// `images reprocess` makes any missing variant again.
    #[tracing::instrument(level = "debug", name = "service.collect_images", skip_all)]
    pub async fn collect_images(&self, grace: Option<Duration>) -> ServiceResult<GcReport> {
        let uploads = Arc::clone(self.uploads()?);
        let grace = grace.unwrap_or(uploads.gc_grace);
        self.blocking(move |s| {
            let mut report = GcReport::default();
            let now = s.now();
            report.unlinked = image_rows::mark_unlinked(&mut *s.conn()?, now)?;
            let before = now - chrono::Duration::from_std(grace).unwrap_or(chrono::TimeDelta::MAX);
            loop {
                const BATCH: i64 = 500;
                let mut conn = s.conn()?;
                let found = image_rows::collectable(&mut conn, before, BATCH)?;
                if found.is_empty() {
                    break;
                }
                let ids: Vec<ImageId> = found.iter().map(|c| c.id).collect();
                let gone = image_rows::delete_unlinked(&mut conn, &ids)?;
                let sources: Vec<String> = found.iter().map(|c| c.source.clone()).collect();
                let kept = image_rows::files_in_use(&mut conn, &sources)?;
                drop(conn);
                let mut files: Vec<&String> = found
                    .iter()
                    .filter(|c| gone.contains(&c.id))
                    .flat_map(|c| &c.files)
                    .filter(|f| !kept.contains(*f))
                    .collect();
                files.sort();
                files.dedup();
                for file in files {
                    let size = uploads.storage.size(file).unwrap_or(0);
                    match uploads.storage.remove(file) {
                        Ok(true) => {
                            report.files += 1;
                            report.bytes += size;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(file, error = %e, "removing a collected image file failed");
                            report.failed += 1;
                        }
                    }
                }
                report.images += gone.len();
                // A short batch was the last; an empty deletion means the rest came
                // back into use meanwhile, and asking again would find them again.
                if gone.is_empty() || found.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                    break;
                }
            }
            if report.images > 0 || report.unlinked > 0 {
                tracing::info!(
                    unlinked = report.unlinked,
                    images = report.images,
                    files = report.files,
                    bytes = report.bytes,
                    "replaced images collected"
                );
            }
            Ok(report)
        })
        .await
    }
}

/// The span an image job runs in, on a worker after the request has answered: a
/// root of its own (a child would keep the request's span open until the job ends,
/// and stretch it) that follows from the request, so a trace exporter links the two
/// (OpenTelemetry span links).
fn job_span(id: ImageId) -> tracing::Span {
    let span =
        tracing::trace_span!(parent: None, "image.job", otel.name = "image job", image.id = %id);
    span.follows_from(tracing::Span::current());
    span
}
