//! Training views and the frozen-prefix activations they produce, cached or recomputed.
//!
//! A frozen prefix computes the same function every epoch, and with seeded views its input is the same too, so
//! its outputs need computing only once per run. Under the default policy (stem to stage 4 frozen) that is most
//! of Lite0's forward FLOPs and all of the augmentation (resize + warp), and the cached activation is small
//! (112×14×14 floats, 88 KiB per view). The cache fills in two steps: up front ("caching" progress phase), the
//! validation images and view 0 of every training image — view 0 is needed anyway for the class means — and
//! then each further view the first time an epoch asks for it, inside that training batch. So the cached path is
//! never slower than recomputing: epoch `e` shows view `e mod views` of every image, epochs `1..views` each pay
//! one prefix pass, every later epoch pays only for the trainable tail. Both paths go through
//! [`Features::batch`] and give bit-identical activations; the live path exists for benchmarks and for sets too
//! large to keep.

use std::borrow::Cow;
use std::sync::Arc;

use burn::prelude::*;
use fovea_vision::Augment;
use image::RgbImage;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::net::{values, Trunk};
use crate::{Result, TrainError};

/// A photo as training sees it (decoded and upright): kept in memory, or loaded again each time it is needed,
/// so a set larger than memory can be trained on — a run touches each image a few times (once per augmented
/// view, the cache keeps the rest), so reloading costs a few decodes per image, not one per epoch.
#[derive(Clone)]
pub enum Photo {
    /// Shared, so the train / validation / test lists built from one decoded set do not copy pixels.
    Kept(Arc<RgbImage>),
    Load(Arc<dyn Fn() -> Result<RgbImage> + Send + Sync>),
}

impl Photo {
    /// The image, borrowed when kept, loaded now otherwise.
    pub fn get(&self) -> Result<Cow<'_, RgbImage>> {
        match self {
            Photo::Kept(img) => Ok(Cow::Borrowed(img.as_ref())),
            Photo::Load(load) => load().map(Cow::Owned),
        }
    }
}

impl From<RgbImage> for Photo {
    fn from(img: RgbImage) -> Self {
        Photo::Kept(Arc::new(img))
    }
}

impl std::fmt::Debug for Photo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Photo::Kept(img) => write!(f, "Kept({}x{})", img.width(), img.height()),
            Photo::Load(_) => f.write_str("Load"),
        }
    }
}

/// A labelled training or validation photo.
#[derive(Debug, Clone)]
pub struct TrainImage {
    pub image: Photo,
    /// Index into the class list passed to [`super::fine_tune`].
    pub label: usize,
}

/// Which image list a sample comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Set {
    Train,
    Validation,
}

/// SplitMix64 finaliser: turns (seed, image, view) into independent rng seeds, so a view does not depend on
/// the order in which views are generated (cached up front or live, batch by batch).
pub(crate) fn mix(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) struct Features<'a> {
    train: &'a [TrainImage],
    validation: &'a [TrainImage],
    views: usize,
    augment: Augment,
    size: u32,
    seed: u64,
    prefix: Trunk,
    /// True when no group is frozen ahead of the tail: the "activation" is the input image itself.
    identity: bool,
    device: Device,
    /// Per-sample prefix output `[c, h, w]`.
    pub dims: [usize; 3],
    cache: Option<Cache>,
}

struct Cache {
    /// `[image][view]` activations, image-major.
    train: Vec<f32>,
    filled: Vec<bool>,
    validation: Vec<f32>,
}

impl<'a> Features<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        prefix: Trunk,
        identity: bool,
        device: Device,
        train: &'a [TrainImage],
        validation: &'a [TrainImage],
        views: usize,
        augment: Augment,
        size: u32,
        seed: u64,
    ) -> Self {
        let s = size as usize;
        let dims = if identity {
            [3, s, s]
        } else {
            // The output shape of SAME-padded convs follows from the strides alone, but running one blank
            // image through the prefix is exact by construction and costs one inference.
            let probe = prefix.prefix_forward(Tensor::zeros([1, 3, s, s], &device));
            let [_, c, h, w] = probe.dims();
            [c, h, w]
        };
        Features { train, validation, views, augment, size, seed, prefix, identity, device, dims, cache: None }
    }

    pub fn sample_len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Bytes a full cache (every training view and every validation image) would take.
    pub fn cache_bytes(&self) -> usize {
        (self.train.len() * self.views + self.validation.len()) * self.sample_len() * std::mem::size_of::<f32>()
    }

    pub fn is_cached(&self) -> bool {
        self.cache.is_some()
    }

    /// The network input of one view: view 0 is the plain centre crop (what serving sees), the others are
    /// augmented with an rng seeded by (seed, image, view).
    pub fn input(&self, set: Set, image: usize, view: usize) -> Result<Vec<f32>> {
        let (images, tag) = match set {
            Set::Train => (self.train, 0),
            Set::Validation => (self.validation, 1u64 << 62),
        };
        let img = images
            .get(image)
            .ok_or_else(|| TrainError::Config(format!("image index {image} out of range")))?
            .image
            .get()?;
        let v = if view == 0 {
            fovea_vision::to_input(&img, self.size)
        } else {
            let mut rng = StdRng::seed_from_u64(mix(self.seed, tag | image as u64, view as u64));
            self.augment.augment(&img, self.size, &mut rng)
        };
        let expected = 3 * (self.size as usize).pow(2);
        if v.len() != expected {
            return Err(TrainError::NotEnoughData(format!(
                "image {image} ({}x{}) gives no usable input",
                img.width(),
                img.height()
            )));
        }
        Ok(v)
    }

    /// Prefix outputs for `items` (image, view), computed now, in one batch, without autodiff.
    fn compute(&self, set: Set, items: &[(usize, usize)]) -> Result<Vec<f32>> {
        let mut input = Vec::with_capacity(items.len() * 3 * (self.size as usize).pow(2));
        for &(image, view) in items {
            input.extend(self.input(set, image, view)?);
        }
        if self.identity {
            return Ok(input);
        }
        let s = self.size as usize;
        let x = Tensor::<4>::from_data(TensorData::new(input, [items.len(), 3, s, s]), &self.device);
        Ok(values(self.prefix.prefix_forward(x))?.0)
    }

    /// Turns the cache on and fills its eager part — validation images, then view 0 of every training image —
    /// in batches of `batch`; `tick(done, total)` after each batch may cancel by returning an error.
    pub fn enable_cache(&mut self, batch: usize, tick: &mut dyn FnMut(usize, usize) -> Result<()>) -> Result<()> {
        let len = self.sample_len();
        let batch = batch.max(1);
        let val_items: Vec<(usize, usize)> = (0..self.validation.len()).map(|i| (i, 0)).collect();
        let train_items: Vec<(usize, usize)> = (0..self.train.len()).map(|i| (i, 0)).collect();
        let total = val_items.len().div_ceil(batch) + train_items.len().div_ceil(batch);
        let mut done = 0;
        let mut validation = Vec::with_capacity(val_items.len() * len);
        for chunk in val_items.chunks(batch) {
            validation.extend(self.compute(Set::Validation, chunk)?);
            done += 1;
            tick(done, total)?;
        }
        let slots = self.train.len() * self.views;
        self.cache = Some(Cache { train: vec![0.0; slots * len], filled: vec![false; slots], validation });
        for chunk in train_items.chunks(batch) {
            self.fill(chunk)?;
            done += 1;
            tick(done, total)?;
        }
        Ok(())
    }

    /// Computes the training samples among `items` that the cache lacks, in one batch, and stores them.
    fn fill(&mut self, items: &[(usize, usize)]) -> Result<()> {
        let Some(cache) = &self.cache else { return Ok(()) };
        let views = self.views;
        let mut missing: Vec<(usize, usize)> = items
            .iter()
            .copied()
            .filter(|&(i, v)| v < views && !cache.filled.get(i * views + v).unwrap_or(&true))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(());
        }
        let computed = self.compute(Set::Train, &missing)?;
        let len = self.sample_len();
        if let Some(cache) = &mut self.cache {
            for (&(i, v), values) in missing.iter().zip(computed.chunks_exact(len)) {
                let slot = i * views + v;
                cache.train[slot * len..(slot + 1) * len].copy_from_slice(values);
                cache.filled[slot] = true;
            }
        }
        Ok(())
    }

    /// Concatenated prefix outputs of `items` (image, view), from the cache when there is one (filling it as
    /// needed), computed now otherwise.
    pub fn batch(&mut self, set: Set, items: &[(usize, usize)]) -> Result<Vec<f32>> {
        if set == Set::Train {
            self.fill(items)?;
        }
        let Some(cache) = &self.cache else {
            return self.compute(set, items);
        };
        let len = self.sample_len();
        let mut out = Vec::with_capacity(items.len() * len);
        for &(image, view) in items {
            let (store, index) = match set {
                Set::Train if view < self.views => (&cache.train, image * self.views + view),
                Set::Validation if view == 0 => (&cache.validation, image),
                _ => return Err(TrainError::Config(format!("sample ({image}, {view}) is not a cached view"))),
            };
            let slice = store
                .get(index * len..(index + 1) * len)
                .ok_or_else(|| TrainError::Config(format!("sample ({image}, {view}) is not in the cache")))?;
            out.extend_from_slice(slice);
        }
        Ok(out)
    }
}
