//! The monitor on synthetic streams with a known change.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::drift::*;

/// Requests from one of two "domains": embeddings around different centres, with class mix, confidence and
/// brightness drawn from the domain's own distributions.
fn observation(rng: &mut ChaCha8Rng, i: usize, shifted: bool, brighter: f64) -> Observation {
    let centre = if shifted { 1.0 } else { 0.0 };
    let embedding: Vec<f32> = (0..32).map(|d| rng.random::<f32>() + if d < 4 { centre } else { 0.0 }).collect();
    let class = format!("c{}", rng.random_range(0..if shifted { 2 } else { 5 }));
    let confidence = if shifted { rng.random_range(0.2..0.7) } else { rng.random_range(0.5..1.0) };
    Observation {
        image_id: format!("img{i}"),
        at: i as i64,
        embedding,
        class: Some(class),
        confidence,
        unknown: rng.random::<f64>() < if shifted { 0.5 } else { 0.05 },
        stats: Some(ImageStats {
            width: 640,
            height: 480,
            brightness: (rng.random_range(0.3..0.6) + brighter).min(1.0),
            grayscale: false,
        }),
    }
}

fn monitor(rng: &mut ChaCha8Rng) -> Monitor {
    let reference: Vec<Observation> = (0..400).map(|i| observation(rng, i, false, 0.0)).collect();
    Monitor::new(Reference::build(&reference, &DriftConfig::default()), DriftConfig::default())
}

#[test]
fn a_stream_from_the_reference_domain_raises_no_alert() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut m = monitor(&mut rng);
    for i in 0..3000 {
        let (raised, _) = m.push(observation(&mut rng, i, false, 0.0));
        assert!(raised.is_empty(), "false alarm at {i}: {raised:?}");
    }
    assert!(m.last_scores().is_some());
}

#[test]
fn a_switch_of_domain_alerts_within_one_window_and_says_what_moved() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut m = monitor(&mut rng);
    for i in 0..400 {
        m.push(observation(&mut rng, i, false, 0.0));
    }
    let mut first = None;
    for i in 400..1000 {
        let (raised, _) = m.push(observation(&mut rng, i, true, 0.0));
        if let Some(a) = raised.first() {
            first.get_or_insert((i - 400, a.clone()));
        }
    }
    let (delay, alert) = first.expect("no alert after a change of domain");
    assert!(delay <= 200, "alert only after {delay} images");
    assert_eq!(alert.examples.len(), 6);
    assert!(alert.score.statistic > alert.score.threshold);
    let signals: Vec<Signal> = m.raised().iter().map(|a| a.signal).collect();
    for s in [Signal::Embedding, Signal::Confidence, Signal::UnknownRate, Signal::ClassMix] {
        assert!(signals.contains(&s), "{s:?} not raised: {signals:?}");
    }
    assert!(!signals.contains(&Signal::Size), "size never changed");
}

#[test]
fn a_brightness_shift_alone_is_caught_by_the_brightness_signal_and_clears_when_it_ends() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut m = monitor(&mut rng);
    let mut raised_at = None;
    for i in 0..600 {
        let (raised, _) = m.push(observation(&mut rng, i, false, if i >= 200 { 0.15 } else { 0.0 }));
        if raised.iter().any(|a| a.signal == Signal::Brightness) {
            raised_at.get_or_insert(i);
        }
    }
    let at = raised_at.expect("brightness shift not detected");
    assert!((200..400).contains(&at), "raised at {at}");
    let mut cleared = false;
    for i in 600..1200 {
        cleared |= m.push(observation(&mut rng, i, false, 0.0)).1.contains(&Signal::Brightness);
    }
    assert!(cleared, "the brightness alert never cleared");
}

#[test]
fn image_stats_see_brightness_and_grey() {
    let grey = ImageStats::from_rgb(2, 1, &[255, 255, 255, 0, 0, 0]);
    assert!((grey.brightness - 0.5).abs() < 0.01 && grey.grayscale);
    let red = ImageStats::from_rgb(1, 1, &[200, 10, 10]);
    assert!(!red.grayscale);
}

#[test]
fn image_stats_are_the_same_on_every_instruction_set() {
    // Over one 4096-pixel run, with a tail: the AVX2 build of the loop (where the CPU has it) must not change a value.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let rgb: Vec<u8> = (0..3 * 5001).map(|_| rng.random()).collect();
    assert_eq!(ImageStats::from_rgb(50, 100, &rgb), ImageStats::from_rgb_any(50, 100, &rgb));
    let grey: Vec<u8> = (0..5001u32).flat_map(|i| [(i % 251) as u8, (i % 251) as u8 + 3, (i % 251) as u8]).collect();
    let stats = ImageStats::from_rgb(50, 100, &grey);
    assert_eq!(stats, ImageStats::from_rgb_any(50, 100, &grey));
    assert!(stats.grayscale);
}

#[test]
fn a_fresh_window_of_another_domain_alerts_before_it_is_full() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let mut m = monitor(&mut rng);
    let mut first = None;
    for i in 0..200 {
        let (raised, _) = m.push(observation(&mut rng, i, true, 0.0));
        if !raised.is_empty() {
            first.get_or_insert(i);
        }
    }
    assert_eq!(first, Some(74), "checks at 50 and 75 images, two in a row");
}
