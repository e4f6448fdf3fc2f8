//! The few dense f64 kernels the heads need. Written as plain slice loops so the compiler vectorises them
//! and the crate stays free of a BLAS dependency.

use crate::error::{Error, Result};

// The hot kernels are compiled twice: for the baseline target and with AVX, picked at run time.
// AVX without FMA performs the same roundings in the same order as the baseline code (lanes are
// fixed accumulators, no contraction), so both paths give bit-identical results and the fold stays
// deterministic across machines.
macro_rules! multiversion {
    ($(#[$m:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? => $imp:ident;) => {
        $(#[$m])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx")]
                fn avx($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx") {
                    // SAFETY: the CPU supports AVX, checked just above.
                    return unsafe { avx($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}

const LANES: usize = 16;

#[inline(always)]
fn reduce(acc: [f64; LANES]) -> f64 {
    let mut v = acc;
    let mut w = LANES / 2;
    while w > 0 {
        for l in 0..w {
            v[l] += v[l + w];
        }
        w /= 2;
    }
    v[0]
}

#[inline(always)]
fn dot_imp(a: &[f64], b: &[f64]) -> f64 {
    // Sixteen fixed accumulators break the add dependency chain and map onto vector registers.
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = reduce(acc);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline(always)]
fn axpy_imp(alpha: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

multiversion! {
    pub fn dot(a: &[f64], b: &[f64]) -> f64 => dot_imp;
}

multiversion! {
    /// `y += alpha * x`
    pub fn axpy(alpha: f64, x: &[f64], y: &mut [f64]) => axpy_imp;
}

#[inline(always)]
fn sq_dist_imp(x: &[f64], sum: &[f64], scale: f64, weights: Option<&[f64]>) -> f64 {
    let n = x.len().min(sum.len());
    let (x, sum) = (&x[..n], &sum[..n]);
    let mut acc = [0.0f64; LANES];
    let (cx, cs) = (x.chunks_exact(LANES), sum.chunks_exact(LANES));
    let tail = cx.remainder().len();
    match weights {
        Some(w) => {
            let w = &w[..n];
            for ((a, b), c) in cx.zip(cs).zip(w.chunks_exact(LANES)) {
                for l in 0..LANES {
                    let r = a[l] - b[l] * scale;
                    acc[l] += r * r * c[l];
                }
            }
        }
        None => {
            for (a, b) in cx.zip(cs) {
                for l in 0..LANES {
                    let r = a[l] - b[l] * scale;
                    acc[l] += r * r;
                }
            }
        }
    }
    let mut s = reduce(acc);
    for i in n - tail..n {
        let r = x[i] - sum[i] * scale;
        s += r * r * weights.map_or(1.0, |w| w[i]);
    }
    s
}

multiversion! {
    /// `sum_j w_j (x_j - s_j * scale)^2` (`w = 1` when `weights` is `None`): the distance from `x`
    /// to a mean kept as a sum.
    pub fn sq_dist_to_mean(x: &[f64], sum: &[f64], scale: f64, weights: Option<&[f64]>) -> f64 => sq_dist_imp;
}

pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// `out = M v` for a row-major `n x n` matrix.
#[cfg(test)]
pub fn matvec(m: &[f64], v: &[f64], out: &mut [f64]) {
    let n = v.len();
    for (i, o) in out.iter_mut().enumerate().take(n) {
        *o = dot(&m[i * n..(i + 1) * n], v);
    }
}

/// Offset of row `i` in a packed upper-triangular `n x n` matrix (row i holds columns i..n).
#[inline]
pub fn packed_row(i: usize, n: usize) -> usize {
    i * (2 * n - i + 1) / 2
}

pub fn packed_len(n: usize) -> usize {
    n * (n + 1) / 2
}

/// `P += c * d d^T` on a packed upper triangle.
pub fn packed_rank_one(p: &mut [f64], n: usize, c: f64, d: &[f64]) {
    for i in 0..n {
        let start = packed_row(i, n);
        let s = c * d[i];
        if s != 0.0 {
            axpy(s, &d[i..], &mut p[start..start + n - i]);
        }
    }
}

pub fn packed_diag(p: &[f64], n: usize, i: usize) -> f64 {
    p[packed_row(i, n)]
}

/// `out = P v` for a symmetric matrix stored as a packed upper triangle: every stored element is read
/// once (half the memory traffic of a full mat-vec) and both inner loops run over contiguous slices.
#[inline(always)]
fn packed_symv_imp(p: &[f64], n: usize, v: &[f64], out: &mut [f64]) {
    out[..n].fill(0.0);
    for i in 0..n {
        let start = packed_row(i, n);
        let row = &p[start..start + n - i];
        out[i] += dot_imp(row, &v[i..n]);
        let vi = v[i];
        if vi != 0.0 {
            axpy_imp(vi, &row[1..], &mut out[i + 1..n]);
        }
    }
}

multiversion! {
    pub fn packed_symv(p: &[f64], n: usize, v: &[f64], out: &mut [f64]) => packed_symv_imp;
}

/// `P += sum_t c_t d_t d_t^T` applied in order, element by element, so the result is bit-identical to
/// applying the rank-one updates one at a time, while each row is loaded only once.
#[inline(always)]
fn packed_rank_k_imp(p: &mut [f64], n: usize, updates: &[(f64, Vec<f64>)]) {
    // A block of the row stays in registers while every queued update is added to it, so the row is
    // loaded and stored once per batch rather than once per update.
    const B: usize = 32;
    let mut scales = vec![0.0; updates.len()];
    for i in 0..n {
        for (s, (c, d)) in scales.iter_mut().zip(updates) {
            *s = c * d[i];
        }
        let start = packed_row(i, n);
        let row = &mut p[start..start + n - i];
        let mut j = 0;
        while j + B <= row.len() {
            let mut acc: [f64; B] = row[j..j + B].try_into().expect("block");
            for (&s, (_, d)) in scales.iter().zip(updates) {
                if s != 0.0 {
                    let dv: &[f64; B] = d[i + j..i + j + B].try_into().expect("block");
                    for l in 0..B {
                        acc[l] += s * dv[l];
                    }
                }
            }
            row[j..j + B].copy_from_slice(&acc);
            j += B;
        }
        for (&s, (_, d)) in scales.iter().zip(updates) {
            if s != 0.0 {
                axpy_imp(s, &d[i + j..], &mut row[j..]);
            }
        }
    }
}

multiversion! {
    pub fn packed_rank_k(p: &mut [f64], n: usize, updates: &[(f64, Vec<f64>)]) => packed_rank_k_imp;
}

/// Pack the upper triangle of a full row-major matrix.
pub fn pack_upper(m: &[f64], n: usize) -> Vec<f64> {
    let mut p = Vec::with_capacity(packed_len(n));
    for i in 0..n {
        p.extend_from_slice(&m[i * n + i..(i + 1) * n]);
    }
    p
}

/// Expand a packed upper triangle into a full symmetric row-major matrix.
pub fn unpack_symmetric(p: &[f64], n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    for i in 0..n {
        let row = &p[packed_row(i, n)..packed_row(i, n) + n - i];
        for (k, &v) in row.iter().enumerate() {
            let j = i + k;
            m[i * n + j] = v;
            m[j * n + i] = v;
        }
    }
    m
}

/// In-place lower Cholesky factor of a full symmetric matrix (upper part is left as garbage-free zeros).
pub fn cholesky(a: &mut [f64], n: usize) -> Result<()> {
    for j in 0..n {
        let row_j = &mut a[j * n..(j + 1) * n];
        let d = row_j[j] - dot(&row_j[..j], &row_j[..j]);
        if d <= 0.0 || !d.is_finite() {
            return Err(Error::NotPositiveDefinite);
        }
        let ljj = d.sqrt();
        row_j[j] = ljj;
        for v in row_j[j + 1..].iter_mut() {
            *v = 0.0;
        }
        // Rows below j use row j's prefix; row-major rows keep both operands contiguous.
        let row_j_copy: Vec<f64> = a[j * n..j * n + j + 1].to_vec();
        for i in j + 1..n {
            let row_i = &mut a[i * n..i * n + j + 1];
            let s = row_i[j] - dot(&row_i[..j], &row_j_copy[..j]);
            row_i[j] = s / ljj;
        }
    }
    Ok(())
}

/// Inverse of a symmetric positive definite matrix via Cholesky: `A^-1 = L^-T L^-1`.
pub fn spd_inverse(a: &[f64], n: usize) -> Result<Vec<f64>> {
    let mut l = a.to_vec();
    cholesky(&mut l, n)?;
    // Lower-triangular inverse by forward substitution, row by row: row i of L^-1 is
    // (e_i - sum_{k<i} L_ik * row_k(L^-1)) / L_ii, where row k is nonzero only up to column k.
    let mut li = vec![0.0; n * n];
    for i in 0..n {
        let (above, rest) = li.split_at_mut(i * n);
        let row_i = &mut rest[..n];
        for k in 0..i {
            let lik = l[i * n + k];
            if lik != 0.0 {
                axpy(-lik, &above[k * n..k * n + k + 1], &mut row_i[..k + 1]);
            }
        }
        row_i[i] += 1.0;
        let inv_lii = 1.0 / l[i * n + i];
        for v in row_i[..=i].iter_mut() {
            *v *= inv_lii;
        }
    }
    // A^-1 = (L^-1)^T (L^-1); entry (i, j) = sum_k li[k][i] li[k][j]. Transpose first for contiguous rows.
    let mut lt = vec![0.0; n * n]; // lt[i][k] = li[k][i], nonzero for k >= i
    for k in 0..n {
        for i in 0..=k {
            lt[i * n + k] = li[k * n + i];
        }
    }
    let mut inv = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let start = j; // both rows are zero before column max(i, j) = j
            let v = dot(&lt[i * n + start..(i + 1) * n], &lt[j * n + start..(j + 1) * n]);
            inv[i * n + j] = v;
            inv[j * n + i] = v;
        }
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_small_spd_matrix() {
        let a = vec![4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let inv = spd_inverse(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let v: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-12, "({i},{j}) = {v}");
            }
        }
    }

    #[test]
    fn packed_rank_one_matches_dense() {
        let n = 4;
        let d = [1.0, -2.0, 0.5, 3.0];
        let mut p = vec![0.0; packed_len(n)];
        packed_rank_one(&mut p, n, 2.0, &d);
        let m = unpack_symmetric(&p, n);
        for i in 0..n {
            for j in 0..n {
                assert_eq!(m[i * n + j], 2.0 * d[i] * d[j]);
            }
        }
    }

    #[test]
    fn packed_symv_and_rank_k_match_dense() {
        for n in [5, 70] {
            symv_and_rank_k_case(n);
        }
    }

    fn symv_and_rank_k_case(n: usize) {
        let mut p = vec![0.0; packed_len(n)];
        let ups: Vec<(f64, Vec<f64>)> =
            (0..3).map(|t| (t as f64 - 0.5, (0..n).map(|i| (i * t) as f64 * 0.3 - 1.0).collect())).collect();
        packed_rank_k(&mut p, n, &ups);
        let mut q = vec![0.0; packed_len(n)];
        for (c, d) in &ups {
            packed_rank_one(&mut q, n, *c, d);
        }
        assert_eq!(p, q);
        let m = unpack_symmetric(&p, n);
        assert_eq!(pack_upper(&m, n), p);
        let v: Vec<f64> = (0..n).map(|i| i as f64 - 2.0).collect();
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        packed_symv(&p, n, &v, &mut a);
        matvec(&m, &v, &mut b);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} vs {y}");
        }
    }

    #[test]
    fn dispatched_kernels_match_baseline_bit_for_bit() {
        // Determinism across machines relies on the AVX path rounding exactly like the baseline one.
        for n in [0, 1, 15, 16, 17, 100, 1283] {
            let a: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1009) as f64 / 37.0 - 13.0).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i * 104729) % 997) as f64 / 91.0 + 0.1).collect();
            assert_eq!(dot(&a, &b).to_bits(), dot_imp(&a, &b).to_bits());
            let (d1, d2) = (sq_dist_to_mean(&a, &b, 0.3, Some(&b)), sq_dist_imp(&a, &b, 0.3, Some(&b)));
            assert_eq!(d1.to_bits(), d2.to_bits());
        }
    }

    #[test]
    fn cholesky_rejects_indefinite() {
        let mut a = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky(&mut a, 2).is_err());
    }
}
