//! Life of the organism around the flow model: frontier exploration (new cells and
//! tubes in free 3D space, or fusion with a nearby cell), nutrient transport, and
//! oscillation phases that synchronise between neighbouring cells (Kuramoto
//! coupling weighted by tube conductivity).

use crate::graph::{conductivity_of_radius, zeroed, Network, Scratch};
use crate::params::Params;
use crate::rng::Rng;

pub const TWO_PI: f64 = 2.0 * core::f64::consts::PI;

/// Wrap an angle into [0, 2π).
pub fn wrap_phase(x: f64) -> f64 {
    let y = x - TWO_PI * libm::floor(x / TWO_PI);
    if y >= TWO_PI { 0.0 } else { y }
}

/// Frontier exploration. A frontier cell is a non-food cell with exactly one alive
/// tube (a pseudopod tip) or a food cell without any alive tube. Each frontier
/// cell, with probability `exploration_probability`, extends a tube of length
/// `step_size` in a random 3D direction: if an existing cell lies within half a
/// step of the target point the tip fuses with it (anastomosis), else a new cell
/// is created there (while fewer than `max_cells` exist). Returns the number of
/// tubes added.
pub fn explore(net: &mut Network, p: &Params, rng: &mut Rng) -> usize {
    if p.exploration_probability <= 0.0 {
        return 0;
    }
    let deg = net.degrees();
    let n0 = net.n_cells();
    let mut added = 0;
    let d0 = conductivity_of_radius(p.initial_thickness);
    for c in 0..n0 {
        let frontier = if net.is_food[c] != 0 { deg[c] == 0 } else { deg[c] == 1 };
        if !frontier || rng.next_f64() >= p.exploration_probability {
            continue;
        }
        let dir = rng.unit_vec3();
        let target = [
            net.position[3 * c] + dir[0] * p.step_size,
            net.position[3 * c + 1] + dir[1] * p.step_size,
            net.position[3 * c + 2] + dir[2] * p.step_size,
        ];
        // Nearest other cell to the target (linear scan; growth is for small demos).
        let mut best: Option<(usize, f64)> = None;
        for o in 0..net.n_cells() {
            if o == c {
                continue;
            }
            let dx = net.position[3 * o] - target[0];
            let dy = net.position[3 * o + 1] - target[1];
            let dz = net.position[3 * o + 2] - target[2];
            let d2 = dx * dx + dy * dy + dz * dz;
            if best.is_none_or(|(_, b)| d2 < b) {
                best = Some((o, d2));
            }
        }
        let half = 0.5 * p.step_size;
        match best {
            Some((o, d2)) if d2 <= half * half => {
                let exists = (0..net.n_tubes()).any(|t| {
                    net.alive[t] != 0 && {
                        let (a, b) = (net.ends[2 * t] as usize, net.ends[2 * t + 1] as usize);
                        (a == c && b == o) || (a == o && b == c)
                    }
                });
                if !exists && net.add_tube(c as u32, o as u32, f64::NAN, d0).is_ok() {
                    added += 1;
                }
            }
            _ => {
                if net.n_cells() >= p.max_cells {
                    continue;
                }
                let Ok(id) = net.add_cell(target[0], target[1], target[2]) else { continue };
                let id_us = id as usize;
                net.nutrient[id_us] = net.nutrient[c] * 0.5;
                net.phase[id_us] = net.phase[c];
                if net.add_tube(c as u32, id, p.step_size, d0).is_ok() {
                    added += 1;
                }
            }
        }
    }
    added
}

/// Nutrients are carried downstream by the flow and decay; food cells stay at 1.
pub fn transport_nutrients(net: &mut Network, p: &Params, scratch: &mut Scratch) {
    let n = net.n_cells();
    let delta = zeroed(&mut scratch.cells, n);
    for &t in net.live() {
        let t = t as usize;
        if net.alive[t] == 0 {
            continue;
        }
        let q = net.flow[t];
        let (mut up, mut down) = (net.ends[2 * t] as usize, net.ends[2 * t + 1] as usize);
        if q < 0.0 {
            core::mem::swap(&mut up, &mut down);
        }
        let s = (p.dt * q.abs() / p.i0).min(1.0);
        delta[down] += 0.5 * s * (net.nutrient[up] - net.nutrient[down]);
    }
    let keep = (1.0 - p.dt * p.nutrient_decay).max(0.0);
    for i in 0..n {
        if net.is_food[i] != 0 {
            net.nutrient[i] = 1.0;
        } else {
            net.nutrient[i] = ((net.nutrient[i] + delta[i]) * keep).clamp(0.0, 1.0);
        }
    }
}

/// Kuramoto step: θ_i += dt (ω + K Σ_j D_ij sin(θ_j − θ_i) / Σ_j D_ij).
/// With no coupling and no natural frequency (K = ω = 0) the phases stand
/// still, and the step costs nothing.
pub fn synchronize(net: &mut Network, p: &Params, scratch: &mut Scratch) {
    if p.sync_strength == 0.0 && p.osc_frequency == 0.0 {
        return;
    }
    let n = net.n_cells();
    let Scratch { tubes: sines, cells, cells2, .. } = scratch;
    let pull = zeroed(cells, n);
    let weight = zeroed(cells2, n);
    // sin(θ_b − θ_a) of the alive tubes, in tube order, in one vectorised pass.
    sines.clear();
    sines.extend(
        net.live()
            .iter()
            .map(|&t| t as usize)
            .filter(|&t| net.alive[t] != 0)
            .map(|t| net.phase[net.ends[2 * t + 1] as usize] - net.phase[net.ends[2 * t] as usize]),
    );
    crate::fastmath::sin_all(sines);
    let mut next_sin = sines.iter();
    for &t in net.live() {
        let t = t as usize;
        if net.alive[t] == 0 {
            continue;
        }
        let (a, b) = (net.ends[2 * t] as usize, net.ends[2 * t + 1] as usize);
        let d = net.conductivity[t];
        let s = *next_sin.next().expect("one sine per alive tube");
        pull[a] += d * s;
        pull[b] -= d * s;
        weight[a] += d;
        weight[b] += d;
    }
    for i in 0..n {
        let coupling = if weight[i] > 0.0 { p.sync_strength * pull[i] / weight[i] } else { 0.0 };
        net.phase[i] = wrap_phase(net.phase[i] + p.dt * (p.osc_frequency + coupling));
    }
}

/// Kuramoto order parameter R in [0, 1] over cells that have at least one alive tube.
pub fn order_parameter(net: &Network) -> f64 {
    let deg = net.degrees();
    let (mut c, mut s, mut k) = (0.0, 0.0, 0usize);
    for i in 0..net.n_cells() {
        if deg[i] > 0 {
            c += libm::cos(net.phase[i]);
            s += libm::sin(net.phase[i]);
            k += 1;
        }
    }
    if k == 0 { 1.0 } else { libm::sqrt(c * c + s * s) / k as f64 }
}
