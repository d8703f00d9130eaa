//! Model-level tests (Tero 2007 / Bonifaci 2012 behaviour) of the native build.

use crate::dynamics::{PhysarumDynamics, Simulation};
use crate::params::{Model, Params, Scheme};

fn power_params() -> Params {
    Params { dt: 1.0, decay: 1.0, mu: 1.0, model: Model::Power, ..Params::default() }
}

#[test]
fn two_parallel_tubes_shorter_wins() {
    // Two cells joined by two tubes of length 1 and 1.5 (a multigraph is allowed).
    let mut s = Simulation::new(power_params(), 1).unwrap();
    s.add_node(0.0, 0.0, 0.0).unwrap();
    s.add_node(1.0, 0.0, 0.0).unwrap();
    s.add_edge(0, 1, 1.0).unwrap();
    s.add_edge(0, 1, 1.5).unwrap();
    s.set_food(&[0, 1]).unwrap();
    for _ in 0..200 {
        s.step();
        assert!(s.last_residual < 1e-9, "residual {}", s.last_residual);
    }
    assert_eq!(s.net.alive, vec![1, 0]);
    assert!((s.net.flow[0] - 1.0).abs() < 1e-12);
    assert!((s.net.conductivity[0] - 1.0).abs() < 1e-9);
}

/// Grid of w×h cells with given seed-perturbed lengths; source corner, sink corner.
fn grid(w: u32, h: u32, params: Params, seed: u64) -> Simulation {
    let mut s = Simulation::new(params, seed).unwrap();
    for y in 0..h {
        for x in 0..w {
            s.add_node(x as f64, y as f64, 0.0).unwrap();
        }
    }
    let mut k = 0u64;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            // Deterministic length jitter so the shortest path is unique.
            let mut jitter = || {
                k += 1;
                1.0 + ((k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1000) as f64 / 1000.0
            };
            if x + 1 < w {
                s.add_edge(i, i + 1, jitter()).unwrap();
            }
            if y + 1 < h {
                s.add_edge(i, i + w, jitter()).unwrap();
            }
        }
    }
    s
}

fn dijkstra_edges(s: &Simulation, src: u32, dst: u32) -> Vec<usize> {
    let n = s.net.n_cells();
    let mut dist = vec![f64::INFINITY; n];
    let mut via = vec![usize::MAX; n];
    let mut done = vec![false; n];
    dist[src as usize] = 0.0;
    for _ in 0..n {
        let mut u = usize::MAX;
        for i in 0..n {
            if !done[i] && (u == usize::MAX || dist[i] < dist[u]) {
                u = i;
            }
        }
        done[u] = true;
        for t in 0..s.net.n_tubes() {
            let (a, b) = (s.net.ends[2 * t] as usize, s.net.ends[2 * t + 1] as usize);
            let v = if a == u { b } else if b == u { a } else { continue };
            let d = dist[u] + s.net.length[t];
            if d < dist[v] {
                dist[v] = d;
                via[v] = t;
            }
        }
    }
    let mut path = Vec::new();
    let mut v = dst as usize;
    while v != src as usize {
        let t = via[v];
        path.push(t);
        let (a, b) = (s.net.ends[2 * t] as usize, s.net.ends[2 * t + 1] as usize);
        v = if a == v { b } else { a };
    }
    path.sort();
    path
}

#[test]
fn grid_converges_to_dijkstra_path() {
    let mut s = grid(6, 5, power_params(), 3);
    s.set_food(&[0, 29]).unwrap();
    let expect = dijkstra_edges(&s, 0, 29);
    for _ in 0..1500 {
        s.step();
        assert!(s.last_residual < 1e-9, "residual {}", s.last_residual);
    }
    let alive: Vec<usize> = (0..s.net.n_tubes()).filter(|&t| s.net.alive[t] != 0).collect();
    assert_eq!(alive, expect);
}

#[test]
fn same_seed_same_bits_and_growth_runs() {
    let mut p = Params { model: Model::Sigmoid, gamma: 2.0, scheme: Some(Scheme::OneToAll), ..Params::default() };
    p.exploration_probability = 0.3;
    let run = |seed| {
        let mut s = grid(5, 5, p.clone(), seed);
        // A pendant cell is a pseudopod tip: the frontier where exploration starts.
        s.add_node(2.0, 2.0, 1.0).unwrap();
        s.add_edge(12, 25, f64::NAN).unwrap();
        s.set_food(&[0, 4, 20, 24]).unwrap();
        s.run(60);
        s
    };
    let (a, b, c) = (run(9), run(9), run(10));
    assert!(a.net.n_cells() > 25, "exploration added cells");
    assert_eq!(a.net.conductivity.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
               b.net.conductivity.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_eq!(a.net.phase, b.net.phase);
    assert_ne!(a.net.position, c.net.position);
    assert!(a.max_residual < 1e-9);
}

#[test]
fn oscillations_synchronise_on_a_connected_network() {
    let p = Params { sync_strength: 2.0, dt: 0.1, ..Params::default() };
    let mut s = grid(4, 4, p, 5);
    s.set_food(&[0, 15]).unwrap();
    let r0 = s.order_parameter();
    for _ in 0..400 {
        s.synchronize_oscillations();
    }
    assert!(s.order_parameter() > 0.99 && s.order_parameter() > r0);
}

#[test]
fn still_oscillators_leave_phases_and_never_touch_the_flow() {
    let moving = Params { model: Model::Sigmoid, gamma: 1.8, scheme: Some(Scheme::OneToAll), ..Params::default() };
    let still = Params { sync_strength: 0.0, osc_frequency: 0.0, ..moving.clone() };
    let run = |p: Params| {
        let mut s = grid(6, 6, p, 3);
        s.set_food(&[0, 5, 30, 35]).unwrap();
        let phases = s.net.phase.clone();
        s.run(40);
        (s, phases)
    };
    let ((a, a0), (b, b0)) = (run(moving), run(still));
    assert_ne!(a.net.phase, a0, "coupled oscillators move");
    assert_eq!(b.net.phase, b0, "K = ω = 0: the phases stand still");
    let bits = |s: &Simulation| s.net.conductivity.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b), "phases do not feed back into the flow model");
}
