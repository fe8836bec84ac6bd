//! Quadrature rules on [0, 1] for Integrated Gradients: the graded midpoint rule (the default),
//! the plain midpoint rule and Gauss–Legendre.
//!
//! **Graded midpoint** ([`graded_midpoint`]): the midpoint rule on `n` panels whose widths follow
//! how fast a film's IG map moves along the path. Why, and the maths: the integrand (the input
//! gradient at x′ + α(x − x′)) of a ReLU network is piecewise constant in α with many small jumps
//! (a unit crossing its kink). On a panel of width h the midpoint rule misses each jump inside it
//! by up to h/2 times the jump, with a sign that varies from jump to jump and pixel to pixel, so a
//! panel where the map moves by σ per unit of α contributes an error of about σ h^{3/2} and the
//! panels add in quadrature: E² ∝ ∫ σ(α)² h(α)² dα, with ∫ dα / h(α) = n panels. Minimising it
//! (a Lagrange multiplier) gives h ∝ σ^{−2/3}, i.e. panel density ∝ σ^{2/3}, and
//! E²_graded / E²_uniform = (∫ σ^{2/3})³ / ∫ σ² (Hölder: ≤ 1, = 1 only for constant σ). The
//! profile σ(α) is [`PATH_VARIATION_PROFILE`], measured on the validation split: it is 10–27×
//! smaller near the black baseline (the film is nearly black there, and the gradient small and
//! steady) than in the middle of the path, and falls again towards the film. With that profile the
//! model predicts 0.76× the uniform rule's error at the same number of gradients; measured through
//! the PyTorch copy of the model on the 14 validation films the profile comes from, 36 graded
//! gradients gave 0.82× (geometric mean; 0.52–0.98×, never above) the map error of 40 uniform
//! ones, and on 8 films not used for the profile 0.90× (0.54–1.21×; docs/performance-log.md).
//! Placing the nodes is the same RiemannOpt idea (Swain & Singhi 2024: choose IG's sample points
//! to cut the gradients needed) with the placement fixed once from measured data rather than
//! probed per film, which costs forward passes and did worse here (the guided rule in
//! `integrated_gradients`).
//!
//! **Midpoint** (`n` equal panels, each evaluated at its centre, weights 1/n; captum's
//! `method="riemann_middle"`): the integrand of a ReLU network's IG is piecewise constant in α with
//! many kinks, so no rule keeps a high order on it, and what sets the error is the widest gap
//! between nodes where the gradient moves. Gauss–Legendre's nodes bunch at both ends and leave gaps
//! of about π/(2n) in the middle of the path, where the gradient of a film changes most (the
//! variation of the map per unit of α measured 6–8 for α < 0.2 and 29–68 above on the bundled
//! sample); the midpoint rule's gaps are 1/n everywhere. Measured on six films
//! (docs/performance-log.md), the midpoint rule's map error is 0.3–0.9× (median 0.68×) Gauss–Legendre's at the same number of
//! gradients.
//!
//! **Gauss–Legendre:**
//!
//! With n nodes it integrates polynomials of degree ≤ 2n − 1 exactly (the trapezoid rule: degree
//! 1), so for the smooth-between-kinks path integrals of Integrated Gradients it reaches a given
//! completeness gap with fewer network evaluations. Same rule as captum's `method="gausslegendre"`.
//!
//! Nodes are the roots of the Legendre polynomial Pₙ on [−1, 1], found by Newton's method from
//! the Tricomi initial guess cos(π(i − ¼)/(n + ½)); weights are 2 / ((1 − x²) Pₙ′(x)²). Both are
//! then mapped to [0, 1]: α = (x + 1)/2, w ← w/2.

/// How fast the IG map moves along the path, per tenth of [0, 1] (α in [0, 0.1), [0.1, 0.2), …):
/// ‖g(α + δ) − g(α)‖ / (δ ‖IG‖) from 50 midpoint gradients (δ = 0.02) of 14 validation films
/// (black baseline, the predicted class; `person598_bacteria_2454` … `NORMAL2-IM-0585-0001`,
/// listed in docs/performance-log.md), each film's ten values divided by their mean, geometric mean over the
/// films. Pneumonia and normal films share its shape: decile by decile each film's own profile
/// lies within 0.2–2.5× of this one (the normal films lowest near the baseline). Only the shape
/// matters: [`graded_midpoint`] uses σ^{2/3} normalised.
pub const PATH_VARIATION_PROFILE: [f64; 10] =
    [0.07, 0.2, 0.48, 0.68, 1.09, 1.74, 1.93, 1.56, 0.92, 0.61];

/// `(nodes, weights)` of the graded midpoint rule on [0, 1] (module docs): `n` panels with
/// density ∝ σ^{2/3} on each tenth of the path ([`PATH_VARIATION_PROFILE`]), each evaluated at its
/// centre with its width as weight. Nodes ascend, weights sum to 1, and the rule integrates lines
/// exactly (each panel does).
pub fn graded_midpoint(n: usize) -> (Vec<f64>, Vec<f64>) {
    let stretches = PATH_VARIATION_PROFILE.len();
    let density: Vec<f64> = PATH_VARIATION_PROFILE
        .iter()
        .map(|s| s.powf(2.0 / 3.0))
        .collect();
    let total: f64 = density.iter().sum();
    // Panel boundary j sits where the cumulative share of the density reaches j/n.
    let boundary = |j: usize| -> f64 {
        if j == 0 {
            return 0.0;
        }
        if j == n {
            return 1.0;
        }
        let target = total * j as f64 / n as f64;
        let mut below = 0.0;
        for (i, d) in density.iter().enumerate() {
            if below + d >= target || i + 1 == stretches {
                return (i as f64 + ((target - below) / d).clamp(0.0, 1.0)) / stretches as f64;
            }
            below += d;
        }
        1.0
    };
    let edges: Vec<f64> = (0..=n).map(boundary).collect();
    let nodes = edges.windows(2).map(|p| (p[0] + p[1]) / 2.0).collect();
    let weights = edges.windows(2).map(|p| p[1] - p[0]).collect();
    (nodes, weights)
}

/// `(nodes, weights)` of the midpoint rule on [0, 1]: `(j + ½)/n` with weight `1/n`.
pub fn midpoint(n: usize) -> (Vec<f64>, Vec<f64>) {
    let nodes = (0..n).map(|j| (j as f64 + 0.5) / n as f64).collect();
    (nodes, vec![1.0 / n as f64; n])
}

/// `(nodes, weights)` on [0, 1], nodes ascending; weights sum to 1.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for i in 1..=n {
        let mut x = (std::f64::consts::PI * (i as f64 - 0.25) / (n as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (p, dp) = legendre_with_derivative(n, x);
            derivative = dp;
            let step = p / dp;
            x -= step;
            if step.abs() < 1e-15 {
                derivative = legendre_with_derivative(n, x).1;
                break;
            }
        }
        nodes.push((x + 1.0) / 2.0);
        weights.push(1.0 / ((1.0 - x * x) * derivative * derivative));
    }
    // Roots come out descending in x; keep the path order (baseline → input).
    nodes.reverse();
    weights.reverse();
    (nodes, weights)
}

/// Pₙ(x) and Pₙ′(x) by the three-term recurrence.
fn legendre_with_derivative(n: usize, x: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let k = k as f64;
        let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
    }
    let dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
    (p1, dp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoint_rule_is_exact_for_lines_and_off_by_h_squared_for_parabolas() {
        for n in [1usize, 3, 32] {
            let (x, w) = midpoint(n);
            assert_eq!(x.len(), n);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let line: f64 = x.iter().zip(&w).map(|(x, w)| w * (3.0 * x + 1.0)).sum();
            assert!((line - 2.5).abs() < 1e-12, "n={n}: {line}");
            // ∫x² = 1/3; the composite midpoint rule gives 1/3 − h²/12 with h = 1/n.
            let parabola: f64 = x.iter().zip(&w).map(|(x, w)| w * x * x).sum();
            let h = 1.0 / n as f64;
            assert!(
                (parabola - (1.0 / 3.0 - h * h / 12.0)).abs() < 1e-12,
                "n={n}"
            );
        }
        assert_eq!(midpoint(4).0, vec![0.125, 0.375, 0.625, 0.875]);
    }

    #[test]
    fn graded_rule_is_a_midpoint_rule_on_panels_that_follow_the_profile() {
        for n in [1usize, 2, 7, 36, 256] {
            let (x, w) = graded_midpoint(n);
            assert_eq!((x.len(), w.len()), (n, n));
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "n={n}");
            assert!(w.iter().all(|&w| w > 0.0));
            // Each node is its panel's centre: the panels tile [0, 1] from 0.
            let mut left = 0.0;
            for (x, w) in x.iter().zip(&w) {
                assert!((x - (left + w / 2.0)).abs() < 1e-12, "n={n}");
                left += w;
            }
            let line: f64 = x.iter().zip(&w).map(|(x, w)| w * (3.0 * x + 1.0)).sum();
            assert!((line - 2.5).abs() < 1e-12, "n={n}: {line}");
        }
        // Panel widths ∝ σ^{−2/3} inside a stretch: with 100 panels the first stretch (σ = 0.07)
        // holds 100 · 0.07^{2/3} / Σσ^{2/3} of them, each (0.07 / 1.93)^{−2/3} times as wide
        // as those in the seventh (σ = 1.93).
        let (x, w) = graded_midpoint(100);
        let total: f64 = PATH_VARIATION_PROFILE
            .iter()
            .map(|s| s.powf(2.0 / 3.0))
            .sum();
        let first = x.iter().filter(|&&x| x < 0.1).count() as f64;
        assert!((first - 100.0 * 0.07f64.powf(2.0 / 3.0) / total).abs() <= 1.0);
        let width_at = |a: f64| w[x.iter().position(|&x| x > a).unwrap()];
        let ratio = width_at(0.02) / width_at(0.65);
        assert!(
            (ratio - (1.93f64 / 0.07).powf(2.0 / 3.0)).abs() < 1e-9,
            "{ratio}"
        );
        // n = 1 is one panel, [0, 1]: the plain midpoint rule's node 0.5 with weight 1.
        assert_eq!(graded_midpoint(1), (vec![0.5], vec![1.0]));
    }

    #[test]
    fn two_point_rule_matches_closed_form() {
        let (x, w) = gauss_legendre(2);
        let d = 0.5 / 3f64.sqrt();
        assert!((x[0] - (0.5 - d)).abs() < 1e-14 && (x[1] - (0.5 + d)).abs() < 1e-14);
        assert!((w[0] - 0.5).abs() < 1e-14 && (w[1] - 0.5).abs() < 1e-14);
    }

    #[test]
    fn integrates_polynomials_up_to_degree_2n_minus_1_exactly() {
        for n in [1usize, 3, 8, 32, 50] {
            let (x, w) = gauss_legendre(n);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "n={n}");
            assert!(x.windows(2).all(|p| p[0] < p[1]));
            let degree = (2 * n - 1) as i32;
            let integral: f64 = x.iter().zip(&w).map(|(x, w)| w * x.powi(degree)).sum();
            let exact = 1.0 / (degree as f64 + 1.0);
            assert!(
                (integral - exact).abs() < 1e-10,
                "n={n}: {integral} vs {exact}"
            );
        }
    }
}
