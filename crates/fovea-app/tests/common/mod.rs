//! Shared by the app's integration tests: a cheap stand-in network and distinct generated images.
#![allow(dead_code)]

use std::io::Cursor;

use fovea_model::{Backbone, Embedded, Variant};

/// A cheap stand-in network: the embedding is the mean of each channel, padded.
pub struct Stub;

impl Backbone for Stub {
    fn variant(&self) -> Variant {
        Variant::Lite0
    }
    fn embedding_dim(&self) -> usize {
        8
    }
    fn engine(&self) -> &'static str {
        "stub"
    }
    fn run(&self, input: &[f32], batch: usize) -> fovea_model::Result<Embedded> {
        let per = input.len() / batch;
        let mut embeddings = Vec::with_capacity(batch * 8);
        for img in input.chunks(per) {
            let c = per / 3;
            for k in 0..8 {
                embeddings.push(img[(k % 3) * c..(k % 3 + 1) * c].iter().sum::<f32>() / c as f32 + k as f32 * 0.01);
            }
        }
        Ok(Embedded { batch, embeddings, logits: vec![0.0; batch] })
    }
}

/// A distinct image for each `i`: colour and a pattern from `i`.
pub fn image(i: usize, w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let v = (x as usize * 7 + y as usize * 13 + i * 31) % 251;
        image::Rgb([(i % 256) as u8, (i / 256 % 256) as u8, v as u8])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}
