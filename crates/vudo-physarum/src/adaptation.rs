//! Tube adaptation: dD/dt = growth_rate · f(|Q|) − decay · D (explicit Euler),
//! with f = |Q|^μ (power law, Tero 2007) or |Q|^γ / (1 + |Q|^γ) (sigmoid, Tero
//! 2010). Afterwards the radius r = D^(1/4) (Hagen–Poiseuille) is checked: tubes
//! with r < prune_threshold are removed; the others are clamped to
//! [min_thickness, max_thickness].

use crate::graph::{conductivity_of_radius, radius_of_conductivity, Network};
use crate::params::{Model, Params};

/// Conductivities at or below this are treated as gone even if prune_threshold is 0
/// (avoids subnormal arithmetic and singular rows).
pub const HARD_FLOOR: f64 = 1e-200;

pub fn response(p: &Params, q: f64) -> f64 {
    let q = q.abs();
    match p.model {
        Model::Power => libm::pow(q, p.mu),
        Model::Sigmoid => {
            let qg = libm::pow(q, p.gamma);
            qg / (1.0 + qg)
        }
    }
}

/// Advance every alive tube by one step; returns the number of tubes pruned.
pub fn adapt(net: &mut Network, p: &Params) -> usize {
    let mut pruned = 0;
    for t in 0..net.n_tubes() {
        if net.alive[t] == 0 {
            continue;
        }
        let d = net.conductivity[t];
        let f = response(p, net.flow[t]);
        let mut d_new = d + p.dt * (p.growth_rate * f - p.decay * d);
        if !(d_new > HARD_FLOOR) {
            d_new = 0.0;
        }
        let r = radius_of_conductivity(d_new);
        if d_new == 0.0 || r < p.prune_threshold {
            net.kill_tube(t);
            pruned += 1;
            continue;
        }
        if r > p.max_thickness {
            d_new = conductivity_of_radius(p.max_thickness);
        } else if r < p.min_thickness {
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
    fn sigmoid_saturates_and_power_is_linear_for_mu_one() {
        let mut p = Params::default();
        assert_eq!(response(&p, -3.0), 3.0);
        p.model = Model::Sigmoid;
        p.gamma = 2.0;
        assert!((response(&p, 1.0) - 0.5).abs() < 1e-15);
        assert!(response(&p, 1e6) < 1.0);
    }
}
