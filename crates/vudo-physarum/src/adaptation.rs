//! Tube adaptation: dD/dt = growth_rate · f(|Q|) − decay · D (explicit Euler),
//! with f = |Q|^μ (power law, Tero 2007) or |Q|^γ / (1 + |Q|^γ) (sigmoid, Tero
//! 2010). Afterwards the radius r = D^(1/4) (Hagen–Poiseuille) is checked: tubes
//! with r < prune_threshold are removed; the others are clamped to
//! [min_thickness, max_thickness].

use crate::fastmath;
use crate::graph::{conductivity_of_radius, radius_of_conductivity, Network, Scratch};
use crate::params::{Model, Params};

/// Conductivities at or below this are treated as gone even if prune_threshold is 0
/// (avoids subnormal arithmetic and singular rows).
pub const HARD_FLOOR: f64 = 1e-200;

/// |q|^e: the identity for e = 1, else the deterministic `fastmath::pow_pos`.
fn power(q: f64, e: f64) -> f64 {
    if e == 1.0 {
        q
    } else {
        fastmath::pow_pos(q, e)
    }
}

pub fn response(p: &Params, q: f64) -> f64 {
    let q = q.abs();
    match p.model {
        Model::Power => power(q, p.mu),
        Model::Sigmoid => {
            let qg = power(q, p.gamma);
            qg / (1.0 + qg)
        }
    }
}

/// `qs[i] = response(p, qs[i])` for every i, bit for bit, vectorised.
pub fn response_all(p: &Params, qs: &mut [f64]) {
    for q in qs.iter_mut() {
        *q = q.abs();
    }
    let e = match p.model {
        Model::Power => p.mu,
        Model::Sigmoid => p.gamma,
    };
    if e != 1.0 {
        fastmath::pow_pos_all(qs, e);
    }
    if p.model == Model::Sigmoid {
        for q in qs.iter_mut() {
            *q = *q / (1.0 + *q);
        }
    }
}

/// The smallest conductivity d >= 0 whose radius satisfies `reached`, for a
/// predicate that is false below some d and true from it on. The computed
/// radius `radius_of_conductivity` is monotone in d (each correctly rounded
/// square root is), and non-negative doubles are ordered like their bit
/// patterns, so a bisection over the bits finds the exact boundary: testing
/// d against it gives the same answer as testing the radius, without the two
/// square roots per tube.
fn first_conductivity(reached: impl Fn(f64) -> bool) -> f64 {
    let (mut lo, mut hi) = (0u64, f64::INFINITY.to_bits());
    if reached(0.0) {
        return 0.0;
    }
    // reached(lo) is false, reached(hi) is true (radius(∞) = ∞).
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if reached(radius_of_conductivity(f64::from_bits(mid))) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    f64::from_bits(hi)
}

/// Advance every alive tube by one step; returns the number of tubes pruned.
pub fn adapt(net: &mut Network, p: &Params, scratch: &mut Scratch) -> usize {
    // r < prune_threshold  <=>  d < keep_from;  r > max_thickness  <=>  d >= clamp_above;
    // r < min_thickness  <=>  d < thick_enough.
    // Found once per set of radii (a bisection over the doubles each).
    let radii = [p.prune_threshold, p.max_thickness, p.min_thickness];
    let [keep_from, clamp_above, thick_enough] = match scratch.thresholds {
        Some((r, d)) if r.map(f64::to_bits) == radii.map(f64::to_bits) => d,
        _ => {
            let d = [
                first_conductivity(|r| r >= p.prune_threshold),
                first_conductivity(|r| r > p.max_thickness),
                first_conductivity(|r| r >= p.min_thickness),
            ];
            scratch.thresholds = Some((radii, d));
            d
        }
    };
    // f(|Q|) of the alive tubes, in tube order, computed in one pass.
    net.trim_live();
    let fs = &mut scratch.tubes;
    fs.clear();
    fs.extend(net.live().iter().filter(|&&t| net.alive[t as usize] != 0).map(|&t| net.flow[t as usize]));
    response_all(p, fs);
    let mut next_f = fs.iter();
    let mut pruned = 0;
    for i in 0..net.live().len() {
        let t = net.live()[i] as usize;
        if net.alive[t] == 0 {
            continue;
        }
        let d = net.conductivity[t];
        let f = *next_f.next().expect("one response per alive tube");
        let mut d_new = d + p.dt * (p.growth_rate * f - p.decay * d);
        if !(d_new > HARD_FLOOR) {
            d_new = 0.0;
        }
        if d_new == 0.0 || d_new < keep_from {
            net.kill_tube(t);
            pruned += 1;
            continue;
        }
        if d_new >= clamp_above {
            d_new = conductivity_of_radius(p.max_thickness);
        } else if d_new < thick_enough {
            d_new = conductivity_of_radius(p.min_thickness);
        }
        net.conductivity[t] = d_new;
        net.age[t] += p.dt;
    }
    pruned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conductivity_thresholds_match_the_radius_tests() {
        for r0 in [0.0, 1e-3, 0.03, 0.5, 1.0, 7.25, 100.0] {
            let below = first_conductivity(|r| r >= r0);
            let above = first_conductivity(|r| r > r0);
            assert!(radius_of_conductivity(below) >= r0);
            assert!(radius_of_conductivity(above) > r0);
            if below > 0.0 {
                let prev = f64::from_bits(below.to_bits() - 1);
                assert!(radius_of_conductivity(prev) < r0, "{r0}");
            }
            let prev = f64::from_bits(above.to_bits() - 1);
            assert!(radius_of_conductivity(prev) <= r0, "{r0}");
            // Around the boundary and far from it, the two tests agree.
            let mut d = below * 0.999_999;
            while d < below * 1.000_001 {
                assert_eq!(d < below, radius_of_conductivity(d) < r0);
                assert_eq!(d >= above, radius_of_conductivity(d) > r0);
                d = f64::from_bits(d.to_bits() + 1_000_003);
            }
        }
    }

    #[test]
    fn thresholds_follow_a_change_of_parameters() {
        let mut net = Network::default();
        for i in 0..3 {
            net.add_cell(i as f64, 0.0, 0.0).unwrap();
        }
        // Two idle tubes (no flow) of radius 0.2, decaying slowly.
        net.add_tube(0, 1, 1.0, conductivity_of_radius(0.2)).unwrap();
        net.add_tube(1, 2, 1.0, conductivity_of_radius(0.2)).unwrap();
        let mut p = Params { dt: 1e-6, prune_threshold: 0.1, ..Params::default() };
        let mut scratch = Scratch::default();
        assert_eq!(adapt(&mut net, &p, &mut scratch), 0, "radius 0.2 stays above 0.1");
        p.prune_threshold = 0.3;
        assert_eq!(adapt(&mut net, &p, &mut scratch), 2, "and is pruned once the threshold is 0.3");
    }

    #[test]
    fn sigmoid_saturates_and_power_is_linear_for_mu_one() {
        let mut p = Params::default();
        assert_eq!(response(&p, -3.0), 3.0);
        p.model = Model::Sigmoid;
        p.gamma = 2.0;
        assert!((response(&p, 1.0) - 0.5).abs() < 1e-15);
        assert!(response(&p, 1e6) < 1.0);
        let qs = [0.0, -2.5, 1e-12, 3.0, 1e300, -7.0, 0.25, 1.0, 2.0];
        for model in [Model::Power, Model::Sigmoid] {
            p.model = model;
            for mu in [1.0, 1.8] {
                p.mu = mu;
                let mut batch = qs.to_vec();
                response_all(&p, &mut batch);
                for (q, b) in qs.iter().zip(&batch) {
                    assert_eq!(response(&p, *q).to_bits(), b.to_bits());
                }
            }
        }
    }
}
