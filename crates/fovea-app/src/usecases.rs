//! The use cases behind every endpoint and command.

use std::time::Instant;

use bytes::Bytes;
use fovea_learn::Head;
use fovea_store::{
    blob_key_for, class_name_key, sha256_hex, ClassId, ImageFilter, ImageRow, LabelOrigin, NewImage, NewLabel,
    NewTransaction, NewUser, Role, ScoredClass, TransactionKind, TransactionRecord, UserRecord,
};
use serde::Serialize;
use tokio::sync::oneshot::error::TryRecvError;

use crate::head::HeadState;
use crate::stages::{ms, StageTimes};
use crate::{App, AppError, Result};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClassifyOutcome {
    pub image_id: String,
    pub transaction_id: i64,
    pub model_version: String,
    pub top: Vec<ScoredClass>,
    pub unknown: bool,
    /// Standardised distance to the nearest class mean; above the calibrated threshold means unknown.
    pub distance: Option<f64>,
    pub width: u32,
    pub height: u32,
    pub latency_ms: f64,
    /// False when these exact bytes were seen before.
    pub new_image: bool,
    /// Where the time went (sent as the `Server-Timing` header, not in the body).
    #[serde(skip)]
    pub stages: StageTimes,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Predicted {
    pub top: Vec<ScoredClass>,
    pub unknown: bool,
    pub distance: Option<f64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LabelOutcome {
    pub label_id: i64,
    pub class: String,
    pub created_class: bool,
    pub model_version: String,
    /// What the model says about the same image now that it has learned.
    pub prediction: Predicted,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClassView {
    pub id: ClassId,
    pub name: String,
    pub images: u64,
    pub is_unknown: bool,
    pub reaches_cutoff: bool,
}

/// A decoded, embedded image whose bytes are stored; its catalog row is written by the caller (see `persist`).
pub(crate) struct Ingested {
    pub id: String,
    pub embedding: Vec<f32>,
    pub backbone: String,
    pub width: u32,
    pub height: u32,
    pub image: NewImage,
    /// The embedding was computed now (not read from the cache), so it still has to be cached.
    pub computed: bool,
    pub look: fovea_insight::ImageStats,
    /// Decode, network and store filled in; the caller adds the rest.
    pub stages: StageTimes,
}

/// A classified upload whose log entry is not written yet.
pub(crate) struct UnrecordedPrediction {
    ingested: Ingested,
    predicted: Predicted,
    model_version: String,
    latency_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub duplicates: usize,
    pub labelled: usize,
    /// Images whose folder named another class than a person's label: left alone, since an import never
    /// overrides a human label (of any origin but import).
    pub kept_human: usize,
    pub failed: Vec<(String, String)>,
    /// Each requested tag with how many imported images it was newly put on.
    pub tagged: Vec<(String, u64)>,
    /// Tags an export had recorded beside the folder, put back.
    pub restored_tags: u64,
}

/// An image decoded for the network, with what the catalog records of it.
pub(crate) struct Decoded {
    pub img: fovea_vision::image::RgbImage,
    /// The photo's upright full size.
    pub dims: (u32, u32),
    pub format: String,
    /// Brightness and greyness, for drift.
    pub look: fovea_insight::ImageStats,
}

/// Decodes an image for a network of input `size` (a large JPEG reduced in the DCT domain).
pub(crate) fn decode_for_network(bytes: &[u8], limits: &fovea_vision::DecodeLimits, size: u32) -> Result<Decoded> {
    let (img, dims, format) = decode_unlooked(bytes, limits, size)?;
    let look = look_of(&img, dims);
    Ok(Decoded { img, dims, format, look })
}

/// [`decode_for_network`] without the drift statistics, for a caller that takes them later (off the latency path).
fn decode_unlooked(
    bytes: &[u8],
    limits: &fovea_vision::DecodeLimits,
    size: u32,
) -> Result<(fovea_vision::image::RgbImage, (u32, u32), String)> {
    let (img, dims) = fovea_vision::decode_for_input_sized(bytes, limits, size)?;
    let format = fovea_vision::image::guess_format(bytes).map(|f| format!("{f:?}").to_lowercase()).unwrap_or_default();
    Ok((img, dims, format))
}

fn look_of(img: &fovea_vision::image::RgbImage, dims: (u32, u32)) -> fovea_insight::ImageStats {
    fovea_insight::ImageStats::from_rgb(dims.0, dims.1, img.as_raw())
}

fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

impl App {
    pub(crate) fn predicted(&self, head: &HeadState, embedding: &[f32]) -> Result<Predicted> {
        let p = head.predict(embedding)?;
        Ok(Predicted { top: self.named_top(head, &p), unknown: p.unknown || p.ranked.is_empty(), distance: p.distance })
    }

    /// The prediction's top classes by name, as every answer shows them.
    pub(crate) fn named_top(&self, head: &HeadState, p: &fovea_learn::Prediction) -> Vec<ScoredClass> {
        p.top_k(self.cfg.top_k)
            .iter()
            .map(|s| ScoredClass {
                class: head.head.class_name(s.class).unwrap_or("?").to_owned(),
                probability: s.probability,
            })
            .collect()
    }

    /// Decodes, stores the bytes (once per distinct content) and embeds under the served backbone.
    pub(crate) async fn ingest(&self, bytes: Bytes, source: &str) -> Result<Ingested> {
        if bytes.len() > self.cfg.limits.max_bytes {
            return Err(fovea_vision::VisionError::TooLarge {
                bytes: bytes.len() as u64,
                max: self.cfg.limits.max_bytes as u64,
            }
            .into());
        }
        let start = Instant::now();
        let limits = self.cfg.limits;
        let size = self.compute.input_size() as u32;
        let b = bytes.clone();
        let served = self.compute.backbone_name();
        let permit = self.decode_permits.acquire().await.map_err(|e| AppError::Internal(e.to_string()))?;
        // The content hash is known long before the pixels: the embedding cache is asked while decoding goes on,
        // and the same blocking task goes on to preprocess unless the cache has answered by then, and then hands
        // the input straight to the compute thread (no hop back through the async runtime) unless the cache has
        // answered with a hit. It does not wait for a lookup still under way: new images are what uploads and bulk
        // runs mostly bring, and waiting cost every request its share of the lookup's latency (0.2 ms at the median
        // on the bench, several in its tail). A cache hit that answers after preprocessing wastes one network pass,
        // which nobody waits for.
        let (hashed, hash) = tokio::sync::oneshot::channel();
        let (told, mut verdict) = tokio::sync::oneshot::channel();
        let compute = self.compute.clone();
        // A large JPEG comes back reduced in the DCT domain (still twice the network's resize side): most of its
        // decode time saved, while the catalog records the photo's real size.
        let decode = tokio::task::spawn_blocking(move || -> Result<_> {
            let id = sha256_hex(&b);
            let _ = hashed.send(id.clone());
            let (img, dims, format) = decode_unlooked(&b, &limits, size)?;
            // The drift statistics are taken before the network starts, not beside it: on a 2-core machine a third
            // busy thread slows both of the network's.
            let look = look_of(&img, dims);
            // A hit needs no input; nor does a failed lookup (the verdict's sender dropped), which reports itself.
            let early = verdict.try_recv();
            let pending = match early {
                Ok(true) | Err(TryRecvError::Closed) => None,
                Ok(false) | Err(TryRecvError::Empty) => {
                    let input = fovea_vision::to_input(&img, size);
                    drop(img);
                    match early.or_else(|_| verdict.try_recv()) {
                        Ok(false) | Err(TryRecvError::Empty) => Some(compute.submit(input)?),
                        Ok(true) | Err(TryRecvError::Closed) => None,
                    }
                }
            };
            Ok((id, dims, format, look, pending, Instant::now()))
        });
        // Once the hash is known, the cache lookup and the store of the bytes run beside the decode. The store goes
        // on the core the decoder leaves idle: overlapping the network instead took both of its cores' time (the
        // file's write and the kernel's journal commit for its fsync), 1.2-1.8 ms of every request's network time
        // on the bench's 2 cores.
        let hashed_work = async {
            // Without a hash the decode task died; its own error is the one reported.
            let Ok(id) = hash.await else { return (Ok(None), Ok(None)) };
            let lookup = async {
                let cached = self.catalog.get_embedding(&id, &served).await.map_err(AppError::from)?;
                let _ = told.send(cached.is_some());
                Ok::<_, AppError>(cached)
            };
            let store = async {
                let key = blob_key_for(&id);
                let created = self.blobs.put_if_absent(&key, bytes).await?;
                Ok::<_, AppError>(Some((key, created, start.elapsed())))
            };
            tokio::join!(lookup, store)
        };
        // The permit bounds decodes in flight, not stores: it goes when decoding does.
        let decode = async move {
            let decoded = decode.await;
            drop(permit);
            decoded
        };
        let (decoded, (cached, stored)) = tokio::join!(decode, hashed_work);
        let decoded = decoded.map_err(|e| AppError::Internal(e.to_string())).and_then(|d| d);
        let ((id, (width, height), format, look, pending, decoded_at), (key, stored_in)) = match (decoded, stored) {
            (Ok(decoded), Ok(Some((key, _, stored_in)))) => (decoded, (key, stored_in)),
            (Ok(_), Ok(None)) => return Err(AppError::Internal("the decode task hashed nothing".into())),
            (Ok(_), Err(e)) => return Err(e),
            (Err(e), stored) => {
                // Bytes that do not decode are not kept: a blob no image row points at is garbage.
                if let (AppError::Image(_), Ok(Some((key, true, _)))) = (&e, stored) {
                    if let Err(gone) = self.blobs.delete(&key).await {
                        tracing::warn!(error = %gone, key, "could not remove the blob of an undecodable upload");
                    }
                }
                return Err(e);
            }
        };
        let (embedding, backbone, computed, network_end) = match (cached?, pending) {
            (Some(e), _) => (e, served, false, None),
            (None, None) => return Err(AppError::Internal("an embedding cache miss was not preprocessed".into())),
            (None, Some(pending)) => {
                let ((e, by), finished) = pending.answer_timed().await?;
                (e, by, true, Some(finished))
            }
        };
        let resumed = Instant::now();
        // A cache hit waited for no network pass: all of its time since the decode is the hand-back's.
        let network_end = network_end.unwrap_or(decoded_at).max(decoded_at).min(resumed);
        let stages = StageTimes {
            decode_ms: ms(decoded_at.saturating_duration_since(start)),
            network_ms: ms(network_end - decoded_at),
            wait_ms: ms(resumed - network_end),
            store_ms: ms(stored_in),
            ..StageTimes::default()
        };
        let image = NewImage {
            id: id.clone(),
            blob_key: key,
            width,
            height,
            format,
            source: source.to_owned(),
            brightness: Some(look.brightness),
            grayscale: Some(look.grayscale),
        };
        Ok(Ingested { id, embedding, backbone, width, height, image, computed, look, stages })
    }

    /// Registers an ingested image and caches its embedding if it was computed now.
    async fn persist(&self, ingested: &Ingested) -> Result<bool> {
        let (_, created) = self.catalog.put_image(ingested.image.clone()).await?;
        // Only a freshly computed embedding is written: a cache hit must not cost a second write.
        if ingested.computed {
            self.catalog.put_embedding(&ingested.id, &ingested.backbone, &ingested.embedding).await?;
        }
        Ok(created)
    }

    /// A stored image's embedding under `backbone`, computed from its blob (and cached) when missing — e.g. an
    /// image first seen before the current model was promoted.
    pub(crate) async fn embedding_for(&self, image_id: &str, backbone: &str) -> Result<Vec<f32>> {
        if let Some(e) = self.catalog.get_embedding(image_id, backbone).await? {
            return Ok(e);
        }
        let bytes = self.image_bytes(image_id).await?;
        let ingested = self.ingest(bytes, "re-embed").await?;
        self.persist(&ingested).await?;
        if ingested.backbone != backbone {
            return Err(AppError::Conflict(format!("the served model changed while embedding {image_id}; retry")));
        }
        Ok(ingested.embedding)
    }

    /// Decode → embed → head → log → answer.
    #[tracing::instrument(skip(self, bytes), fields(bytes = bytes.len()))]
    pub async fn classify(&self, bytes: Bytes, user: &str) -> Result<ClassifyOutcome> {
        let unrecorded = self.predict_upload(bytes).await?;
        self.record_prediction(unrecorded, user).await
    }

    /// Decode → embed → head: everything of a classify but its log entry, so a bulk run can start the next image's
    /// decode while this one's commit waits for its fsync.
    pub(crate) async fn predict_upload(&self, bytes: Bytes) -> Result<UnrecordedPrediction> {
        let start = Instant::now();
        let mut ingested = self.ingest(bytes.clone(), "upload").await?;
        let (predicted, model_version) = loop {
            let head = self.head.lock().await;
            if head.backbone() == ingested.backbone {
                let predicting = Instant::now();
                let predicted = self.predicted(&head, &ingested.embedding)?;
                ingested.stages.predict_ms = ms(predicting.elapsed());
                break (predicted, head.version());
            }
            // A promotion landed between embedding and predicting: embed again with the new backbone.
            drop(head);
            ingested = self.ingest(bytes.clone(), "upload").await?;
        };
        let latency_ms = ms(start.elapsed());
        Ok(UnrecordedPrediction { ingested, predicted, model_version, latency_ms })
    }

    /// Logs a prediction with its image and fresh embedding, then feeds the drift monitor.
    pub(crate) async fn record_prediction(&self, p: UnrecordedPrediction, user: &str) -> Result<ClassifyOutcome> {
        let UnrecordedPrediction { ingested, predicted, model_version, latency_ms } = p;
        let txn = NewTransaction {
            image_id: ingested.id.clone(),
            model_version: model_version.clone(),
            kind: TransactionKind::Predict,
            top_k: predicted.top.clone(),
            chosen_class: None,
            user: user.to_owned(),
            latency_ms,
            unknown: predicted.unknown,
        };
        // Image, fresh embedding and log entry in one commit: one fsync per classify instead of three.
        let fresh = ingested.computed.then_some((ingested.backbone.as_str(), ingested.embedding.as_slice()));
        let committing = Instant::now();
        let (_, new_image, transaction_id) =
            self.catalog.record_classification(ingested.image.clone(), fresh, txn).await?;
        let stages = StageTimes { commit_ms: ms(committing.elapsed()), ..ingested.stages };
        self.observe_drift(&ingested, &predicted, user).await;
        let Ingested { id: image_id, width, height, .. } = ingested;
        Ok(ClassifyOutcome {
            image_id,
            transaction_id,
            model_version,
            top: predicted.top,
            unknown: predicted.unknown,
            distance: predicted.distance,
            width,
            height,
            latency_ms,
            new_image,
            stages,
        })
    }

    /// Labels an image with an existing or new class (or "Unknown"); the head learns before this returns, and the
    /// label is committed before the head changes, so an acknowledged correction survives any crash.
    #[tracing::instrument(skip(self))]
    pub async fn label(&self, image_id: &str, class: &str, user: &str, origin: LabelOrigin) -> Result<LabelOutcome> {
        let start = Instant::now();
        let class = class.trim();
        if self.catalog.get_image(image_id).await?.is_none() {
            return Err(AppError::NotFound { what: "image", id: image_id.to_owned() });
        }
        let backbone = self.head.lock().await.backbone().to_owned();
        let embedding = self.embedding_for(image_id, &backbone).await?;
        let (record, created_class) = self.class_for_label(class).await?;
        let mut head = self.head.lock().await;
        if head.backbone() != backbone {
            return Err(AppError::Conflict("the served model changed during this correction; please retry".into()));
        }
        // Labels logged by another process since our last fold come first, so the head stays a fold of the log.
        head.catch_up(self.catalog.as_ref()).await?;
        let label = self
            .catalog
            .add_label(NewLabel { image_id: image_id.to_owned(), class_id: record.id, user: user.to_owned(), origin })
            .await?;
        if label.previous_class_id.is_none() {
            self.note_served_outcome(&head.head, &embedding, &record.name);
        }
        // Folded from the log rather than applied alone: a label another replica committed between the catch-up
        // above and ours has a lower id, and must not be skipped.
        head.catch_up(self.catalog.as_ref()).await?;
        if head.since_snapshot >= self.cfg.snapshot_every {
            head.save(self.catalog.as_ref()).await?;
        }
        let prediction = self.predicted(&head, &embedding)?;
        let model_version = head.version();
        drop(head);
        self.catalog
            .log_transaction(NewTransaction {
                image_id: image_id.to_owned(),
                model_version: model_version.clone(),
                kind: TransactionKind::Correct,
                top_k: prediction.top.clone(),
                chosen_class: Some(record.name.clone()),
                user: user.to_owned(),
                latency_ms: ms(start.elapsed()),
                unknown: prediction.unknown,
            })
            .await?;
        Ok(LabelOutcome { label_id: label.id, class: record.name, created_class, model_version, prediction })
    }

    /// The class a label names, created when new; the flag says whether it was.
    pub(crate) async fn class_for_label(&self, name: &str) -> Result<(fovea_store::ClassRecord, bool)> {
        let name = name.trim();
        Ok(match self.catalog.class_by_name(name).await? {
            Some(c) => (c, false),
            None => (self.catalog.create_class(name).await?, true),
        })
    }

    pub async fn classes(&self) -> Result<Vec<ClassView>> {
        Ok(self
            .catalog
            .list_classes()
            .await?
            .into_iter()
            .map(|s| ClassView {
                id: s.class.id,
                reaches_cutoff: !s.class.is_unknown && s.image_count >= self.cfg.cutoff,
                name: s.class.name,
                images: s.image_count,
                is_unknown: s.class.is_unknown,
            })
            .collect())
    }

    pub async fn create_class(&self, name: &str) -> Result<ClassView> {
        let c = self.catalog.create_class(name.trim()).await?;
        Ok(ClassView { id: c.id, name: c.name, images: 0, is_unknown: false, reaches_cutoff: false })
    }

    /// Recorded renames, newest first.
    pub async fn renames(&self, limit: u32) -> Result<Vec<fovea_store::RenameRecord>> {
        Ok(self.catalog.list_renames(limit.min(500)).await?)
    }

    /// Recorded merges, newest first.
    pub async fn merges(&self, limit: u32) -> Result<Vec<fovea_store::MergeRecord>> {
        Ok(self.catalog.list_merges(limit.min(500)).await?)
    }

    /// Undoes a class's creation: only a class no label has ever named can go.
    pub async fn delete_unused_class(&self, id: ClassId) -> Result<()> {
        self.catalog.delete_unused_class(id).await?;
        Ok(())
    }

    /// Renames and merges change which class every past label points at: the catalog starts a new label-log epoch in
    /// the same commit, and the head, on catching up, is rebuilt from the log.
    pub async fn rename_class(&self, id: ClassId, name: &str) -> Result<()> {
        self.catalog.rename_class(id, name.trim()).await?;
        self.rebuild_head().await
    }

    pub async fn merge_classes(&self, from: ClassId, into_name: &str) -> Result<fovea_store::MergeOutcome> {
        let into = self
            .catalog
            .class_by_name(into_name)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "class", id: into_name.to_owned() })?;
        let outcome = self.catalog.merge_classes(from, into.id).await?;
        self.rebuild_head().await?;
        Ok(outcome)
    }

    /// Brings a merged-away class back with the labels the merge moved; the head is rebuilt from the log.
    pub async fn undo_merge(&self, merge_id: i64) -> Result<fovea_store::ClassRecord> {
        let class = self.catalog.undo_merge(merge_id).await?;
        self.rebuild_head().await?;
        Ok(class)
    }

    async fn rebuild_head(&self) -> Result<()> {
        let mut head = self.head.lock().await;
        head.catch_up(self.catalog.as_ref()).await?;
        head.save(self.catalog.as_ref()).await
    }

    pub async fn images(&self, filter: &ImageFilter) -> Result<(Vec<ImageRow>, u64)> {
        Ok((self.catalog.list_images(filter).await?, self.catalog.count_images(filter).await?))
    }

    /// The served model's top-1 for each image now, from its cached embedding (`None` where the image has none
    /// under the served backbone, or the model knows no class). The Dataset grid shows it beside the label, so a
    /// caption follows labelling, merges and promotions instead of repeating what the model said at upload.
    pub async fn current_top1(&self, image_ids: &[String]) -> Result<Vec<Option<ScoredClass>>> {
        let backbone = self.head.lock().await.backbone().to_owned();
        let mut embeddings = Vec::with_capacity(image_ids.len());
        for id in image_ids {
            embeddings.push(self.catalog.get_embedding(id, &backbone).await?);
        }
        let head = self.head.lock().await;
        if head.backbone() != backbone {
            // A promotion landed meanwhile: these embeddings belong to the old backbone.
            return Ok(vec![None; image_ids.len()]);
        }
        embeddings
            .iter()
            .map(|e| match e {
                Some(e) => Ok(self.predicted(&head, e)?.top.into_iter().next()),
                None => Ok(None),
            })
            .collect()
    }

    pub async fn image_bytes(&self, id: &str) -> Result<Bytes> {
        let img =
            self.catalog.get_image(id).await?.ok_or_else(|| AppError::NotFound { what: "image", id: id.to_owned() })?;
        // The catalog knows the image, so bytes missing from the blob store are the server's loss, not a 404.
        self.blobs.get(&img.blob_key).await.map_err(|e| match e {
            fovea_store::StoreError::NotFound { .. } => AppError::Internal(format!(
                "the bytes of image {id} are missing from the blob store ({})",
                img.blob_key
            )),
            other => other.into(),
        })
    }

    pub async fn transactions(&self, filter: &fovea_store::TransactionFilter) -> Result<Vec<TransactionRecord>> {
        let filter = fovea_store::TransactionFilter { limit: filter.limit.min(500), ..filter.clone() };
        Ok(self.catalog.list_transactions(&filter).await?)
    }

    pub async fn model_version(&self) -> String {
        self.head.lock().await.version()
    }

    pub async fn authenticate(&self, token: &str) -> Result<UserRecord> {
        self.catalog.user_by_token_hash(&token_hash(token)).await?.ok_or(AppError::Unauthorized)
    }

    /// Creates a user and returns their token; only its hash is stored.
    pub async fn add_user(&self, name: &str, role: Role) -> Result<(UserRecord, String)> {
        let token = format!("fv_{}", hex::encode(rand::random::<[u8; 24]>()));
        let user =
            self.catalog.create_user(NewUser { name: name.to_owned(), role, token_sha256: token_hash(&token) }).await?;
        Ok((user, token))
    }

    /// On the very first start, creates an admin and returns its token (shown once).
    pub async fn ensure_admin(&self) -> Result<Option<String>> {
        if self.catalog.list_users().await?.is_empty() {
            return match self.add_user("admin", Role::Admin).await {
                Ok((_, token)) => Ok(Some(token)),
                // Another replica starting on the same catalog created it first; its token was shown there.
                Err(AppError::Conflict(_)) => Ok(None),
                Err(e) => Err(e),
            };
        }
        Ok(None)
    }

    /// Imports one file: stored, embedded, and labelled when `class` is given. An import only labels images no
    /// person has labelled: an image with a human label keeps it (counted in `kept_human` when the folder's class
    /// differs), while one labelled only by earlier imports follows the folder.
    pub async fn import_bytes(
        &self,
        bytes: Bytes,
        source: &str,
        class: Option<&str>,
        report: &mut ImportReport,
    ) -> Result<()> {
        let ingested = self.ingest(bytes, source).await?;
        let (id, created) = (ingested.id.clone(), self.persist(&ingested).await?);
        if created {
            report.imported += 1;
        } else {
            report.duplicates += 1;
        }
        let Some(class) = class else { return Ok(()) };
        let same_class = |name: &str| class_name_key(name) == class_name_key(class);
        let current = self.catalog.current_label(&id).await?;
        if current.as_ref().is_some_and(|l| same_class(&l.class_name)) {
            return Ok(());
        }
        if self.catalog.human_label(&id).await?.is_some() {
            report.kept_human += 1;
            return Ok(());
        }
        match self.label(&id, class, fovea_store::IMPORT_USER, LabelOrigin::Import).await {
            Ok(_) => report.labelled += 1,
            // A person labelled it since the check above: the catalog refused the import's label, as it should.
            Err(AppError::Conflict(_)) if self.catalog.human_label(&id).await?.is_some() => report.kept_human += 1,
            Err(e) => return Err(e),
        }
        Ok(())
    }
}
