//! Micro-benchmark of single kernels at Lite0 shapes (best of many runs, GMAC/s).
use fovea_kernels::kernels::{matmul, Act, Depthwise, Packed};
use fovea_kernels::random::Rng;
use fovea_kernels::Isa;
use std::time::Instant;

fn best<F: FnMut()>(mut f: F) -> f64 {
    let mut b = f64::MAX;
    for _ in 0..50 {
        let t = Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b
}

fn main() {
    let isa = Isa::choose(None).expect("FOVEA_KERNELS names a path this CPU has");
    println!("kernels: {isa} ({})", isa.describe());
    let mut rng = Rng::new(1);
    for &(m, k, n) in &[
        (12544, 16, 96),
        (784, 40, 240),
        (196, 80, 480),
        (196, 112, 672),
        (49, 192, 1152),
        (384, 16, 96),
        (3136, 24, 144),
        (3136, 144, 24),
        (784, 144, 40),
        (196, 480, 80),
        (49, 320, 1280),
        (49, 1152, 192),
    ] {
        let a = rng.vec(m * k, 1.0);
        let w = Packed::from_out_in(&rng.vec(n * k, 0.1), &rng.vec(n, 0.1), n, k);
        let mut out = vec![0.0; m * n];
        let t = best(|| matmul(isa, &a, k, m, &w, Act::Relu6, None, &mut out, n));
        println!("m {m:>5} k {k:>4} n {n:>4}: {:.3} ms {:.1} GMAC/s", t * 1e3, (m * k * n) as f64 / t / 1e9);
    }
    for &(h, c, k, st) in &[
        (112, 32, 3, 1),
        (112, 96, 3, 2),
        (56, 144, 3, 1),
        (28, 240, 5, 1),
        (14, 672, 5, 1),
        (7, 1152, 5, 1),
        (56, 144, 5, 2),
    ] {
        let x = rng.vec(h * h * c, 1.0);
        let dw = Depthwise::from_oihw(&rng.vec(c * k * k, 0.3), &rng.vec(c, 0.1), c, k, st);
        let (oh, ow) = dw.out_size(h, h);
        let mut out = vec![0.0; oh * ow * c];
        let t = best(|| dw.run(isa, &x, h, h, 0..oh, &mut out));
        let (row_px, col0) = dw.padded_row(h);
        let mut padded = vec![0.0; h * row_px * c];
        for y in 0..h {
            padded[(y * row_px + col0) * c..(y * row_px + col0 + h) * c]
                .copy_from_slice(&x[y * h * c..(y + 1) * h * c]);
        }
        let tp = best(|| dw.run_padded(isa, &padded, h, h, 0..oh, &mut out));
        let macs = (oh * ow * c * k * k) as f64;
        println!(
            "dw {h:>3}x{h:<3} c {c:>4} k{k} s{st}: plain {:.3} ms {:.1} GMAC/s, padded {:.3} ms {:.1} GMAC/s",
            t * 1e3,
            macs / t / 1e9,
            tp * 1e3,
            macs / tp / 1e9
        );
    }
}
