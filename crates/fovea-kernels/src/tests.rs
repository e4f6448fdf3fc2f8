//! Whole-network tests: the fast path against the naive reference, batching, threading and error cases.

use crate::random::{BlockSpec, NetSpec, Rng};
use crate::reference;
use crate::{Config, Error, FastLite, Fusion, Isa};

/// A reduced network that still has every case: no-expand first block, strides 1 and 2 with 3x3 and 5x5 kernels,
/// residual and non-residual stride-1 blocks, and widths that are not multiples of the SIMD width.
fn small_spec() -> (NetSpec, Vec<usize>) {
    let b = |cout, expand, kernel| BlockSpec { cout, expand, kernel };
    let spec = NetSpec {
        stem: 8,
        blocks: vec![
            b(4, 1, 3),  // stage 0, stride 1
            b(6, 6, 3),  // stage 1, stride 2
            b(6, 6, 3),  // residual
            b(10, 6, 5), // stage 2, stride 2
            b(10, 6, 5), // residual
            b(12, 6, 3), // stage 3, stride 2
            b(14, 4, 5), // stage 4, stride 1, widths differ so no residual
            b(16, 6, 5), // stage 5, stride 2
            b(16, 6, 3), // residual, 96 expanded channels (full AVX blocks)
            b(20, 6, 3), // stage 6, stride 1
        ],
        head: 24,
        classes: 7,
    };
    (spec, vec![1, 2, 1, 2, 1, 2, 1, 2, 1, 1])
}

fn build(spec: &NetSpec, seed: u64, threads: usize, portable: bool) -> FastLite {
    let isa = Some(if portable { Isa::Portable } else { Isa::detect() });
    let config = Config { threads, isa, ..Config::default() };
    FastLite::from_tensors_with(&spec.tensors(seed), &config).expect("build")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn check_against_reference(spec: &NetSpec, strides: &[usize], batch: usize, h: usize, w: usize) {
    let tensors = spec.tensors(7);
    let input = Rng::new(99).vec(batch * 3 * h * w, 1.0);
    let want: Vec<_> =
        input.chunks_exact(3 * h * w).map(|img| reference::forward(&tensors, strides, img, h, w)).collect();
    let mut cases = Vec::new();
    // Every kernel path this CPU has, each layer by layer and fused, on one and several threads.
    for isa in Isa::available() {
        cases.extend([(1, isa, Fusion::Never), (2, isa, Fusion::Always), (3, isa, Fusion::Auto)]);
    }
    cases.extend([(2, Isa::detect(), Fusion::Never), (1, Isa::detect(), Fusion::Always)]);
    for (threads, isa, fusion) in cases {
        let config = Config { threads, isa: Some(isa), fusion };
        let net = FastLite::from_tensors_with(&tensors, &config).unwrap();
        let emb = net.embed_hw(&input, batch, h, w).unwrap();
        let logits = net.classify(&emb, batch);
        for (i, (we, wl)) in want.iter().enumerate() {
            let e = &emb[i * spec.head..(i + 1) * spec.head];
            let l = &logits[i * spec.classes..(i + 1) * spec.classes];
            let (de, dl) = (max_diff(e, we), max_diff(l, wl));
            assert!(de < 1e-4 && dl < 1e-4, "image {i}, threads {threads}, {isa:?}, {fusion:?}: {de} {dl}");
        }
    }
}

#[test]
fn infers_strides_and_widths_from_tensors() {
    let (spec, strides) = small_spec();
    let net = build(&spec, 1, 1, false);
    let got: Vec<usize> = net.net.blocks.iter().map(|b| b.depthwise.stride).collect();
    assert_eq!(got, strides);
    let residual: Vec<bool> = net.net.blocks.iter().map(|b| b.residual).collect();
    assert_eq!(residual, [false, false, true, false, true, false, false, false, true, false]);
    assert_eq!((net.embedding_dim(), net.num_classes()), (24, 7));

    let lite0 = build(&NetSpec::lite0(), 1, 1, false);
    let got: Vec<usize> = lite0.net.blocks.iter().map(|b| b.depthwise.stride).collect();
    assert_eq!(got, [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]);
    assert_eq!((lite0.embedding_dim(), lite0.num_classes()), (1280, 1000));
}

#[test]
fn small_network_matches_reference_on_odd_sizes() {
    let (spec, strides) = small_spec();
    check_against_reference(&spec, &strides, 3, 33, 37);
    check_against_reference(&spec, &strides, 1, 32, 32);
    // Images smaller than a kernel: padding on every side, 1x1 feature maps.
    check_against_reference(&spec, &strides, 2, 1, 1);
    check_against_reference(&spec, &strides, 1, 2, 5);
}

#[test]
fn lite0_widths_match_reference() {
    let spec = NetSpec::lite0();
    let strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1];
    check_against_reference(&spec, &strides, 1, 45, 40);
}

#[test]
fn batch_gives_the_same_results_as_single_images() {
    let (spec, _) = small_spec();
    let (h, w, batch) = (33, 37, 11); // more than one group of 8 on one thread
    let input = Rng::new(5).vec(batch * 3 * h * w, 1.0);
    for threads in [1, 2, 3] {
        let net = build(&spec, 3, threads, false);
        let all = net.embed_hw(&input, batch, h, w).unwrap();
        for (i, img) in input.chunks_exact(3 * h * w).enumerate() {
            let one = net.embed_hw(img, 1, h, w).unwrap();
            assert!(max_diff(&one, &all[i * 24..(i + 1) * 24]) < 1e-6, "threads {threads} image {i}");
        }
    }
}

#[test]
fn square_embed_and_empty_batch() {
    let (spec, _) = small_spec();
    let net = build(&spec, 3, 2, false);
    let input = Rng::new(8).vec(2 * 3 * 40 * 40, 1.0);
    assert_eq!(net.embed(&input, 2, 40).unwrap(), net.embed_hw(&input, 2, 40, 40).unwrap());
    assert!(net.embed(&[], 0, 40).unwrap().is_empty());
    assert!(net.classify(&[], 0).is_empty());
}

#[test]
fn rejects_wrong_input_length_and_size() {
    let (spec, _) = small_spec();
    let net = build(&spec, 3, 1, false);
    let input = vec![0.0; 3 * 32 * 32 - 1];
    assert!(matches!(net.embed(&input, 1, 32), Err(Error::InputLength { expected: 3072, got: 3071, .. })));
    assert!(matches!(net.embed(&[], 1, 0), Err(Error::InputSize(0))));
}

#[test]
fn rejects_missing_and_misshapen_tensors() {
    let (spec, _) = small_spec();
    for name in ["_conv_stem.weight", "_blocks.3._bn1.running_var", "_blocks.2._project_conv.weight", "_fc.bias"] {
        let mut t = spec.tensors(1);
        t.remove(name);
        match FastLite::from_tensors(&t) {
            Err(Error::MissingTensor(n)) => assert_eq!(n, name),
            other => panic!("{name}: expected MissingTensor, got {:?}", other.err()),
        }
    }
    let mut t = spec.tensors(1);
    t.get_mut("_blocks.1._expand_conv.weight").unwrap().shape = vec![24, 5, 1, 1];
    assert!(matches!(FastLite::from_tensors(&t), Err(Error::BadShape { .. })));
    let mut t = spec.tensors(1);
    t.get_mut("_fc.weight").unwrap().data.pop();
    assert!(matches!(FastLite::from_tensors(&t), Err(Error::DataLength { .. })));
    let mut t = spec.tensors(1);
    t.retain(|k, _| !k.starts_with("_blocks."));
    assert!(matches!(FastLite::from_tensors(&t), Err(Error::MissingTensor(_))));
}

#[test]
fn is_send_and_sync_and_detects_isa() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FastLite>();
    let (spec, _) = small_spec();
    assert_eq!(build(&spec, 1, 1, true).isa(), Isa::Portable);
}

#[test]
fn fused_blocks_match_layer_by_layer_at_real_widths() {
    // Wide enough that fused blocks use several bands and their ring buffers wrap around.
    let spec = NetSpec::lite0();
    let tensors = spec.tensors(11);
    let size = 161;
    let input = Rng::new(12).vec(2 * 3 * size * size, 1.0);
    let run = |threads, fusion| {
        let config = Config { threads, fusion, ..Config::default() };
        let net = FastLite::from_tensors_with(&tensors, &config).unwrap();
        net.embed(&input, 2, size).unwrap()
    };
    let want = run(1, Fusion::Never);
    for (threads, fusion) in [(1, Fusion::Always), (2, Fusion::Always), (2, Fusion::Auto), (2, Fusion::Never)] {
        let got = run(threads, fusion);
        assert!(max_diff(&got, &want) < 1e-5, "{threads} threads, {fusion:?}");
    }
    // One image alone (layers split across threads) matches too.
    let net = build(&spec, 11, 2, false);
    let one = net.embed(&input[..3 * size * size], 1, size).unwrap();
    assert!(max_diff(&one, &want[..1280]) < 1e-5);
}

#[test]
fn single_images_from_several_callers_at_once() {
    // Each batch-1 pass runs with a team of the pool's threads; concurrent callers share the pool, so a helper may
    // never start (the caller then takes every chunk) or may serve another caller's pass first.
    let (spec, _) = small_spec();
    let net = build(&spec, 4, 2, false);
    let (h, w) = (33, 37);
    let images: Vec<Vec<f32>> = (0..4).map(|i| Rng::new(20 + i).vec(3 * h * w, 1.0)).collect();
    let want: Vec<Vec<f32>> = images.iter().map(|img| net.embed_hw(img, 1, h, w).unwrap()).collect();
    std::thread::scope(|s| {
        for (img, want) in images.iter().zip(&want) {
            let net = &net;
            s.spawn(move || {
                for _ in 0..25 {
                    assert_eq!(&net.embed_hw(img, 1, h, w).unwrap(), want);
                }
            });
        }
    });
}
