//! Profiling harness (not a benchmark): runs the benchmark's model on a
//! jittered lattice and prints per-phase wall time and a result checksum.
//! `cargo run --release -p vudo-physarum --example profile_run -- SIDE STEPS`
use std::time::Instant;
use vudo_physarum::dynamics::{PhysarumDynamics, Simulation};
use vudo_physarum::params::{Model, Params, Scheme};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let side: usize = args.get(1).map_or(159, |s| s.parse().unwrap());
    let steps: u64 = args.get(2).map_or(100, |s| s.parse().unwrap());
    let mut p = Params::default();
    p.model = Model::Sigmoid;
    p.gamma = 1.8;
    p.i0 = 1.0;
    p.dt = 0.2;
    p.scheme = Some(Scheme::OneToAll);
    p.prune_threshold = 0.03;
    let mut sim = Simulation::new(p, 1).unwrap();
    let mut r = vudo_physarum::rng::Rng::new(side as u64);
    for y in 0..side {
        for x in 0..side {
            let jx = r.next_f64() * 0.5 - 0.25;
            let jy = r.next_f64() * 0.5 - 0.25;
            sim.add_node(x as f64 + jx, y as f64 + jy, 0.0).unwrap();
        }
    }
    let v = |x: usize, y: usize| (y * side + x) as u32;
    let mut edges = Vec::new();
    for y in 0..side {
        for x in 0..side - 1 {
            edges.push((v(x, y), v(x + 1, y)));
        }
    }
    for y in 0..side - 1 {
        for x in 0..side {
            edges.push((v(x, y), v(x, y + 1)));
        }
    }
    for (a, b) in edges {
        let l = sim.net.distance(a, b);
        sim.add_edge(a, b, l).unwrap();
    }
    let s = side - 1;
    let food: Vec<u32> = [(1, 1), (s - 1, 1), (1, s - 1), (s - 1, s - 1), (s / 2, s / 2), (s / 2, 1)]
        .iter()
        .map(|&(i, j)| v(i, j))
        .collect();
    sim.set_food(&food).unwrap();
    sim.run(5);
    let (mut tf, mut ta, mut te, mut to) = (0.0, 0.0, 0.0, 0.0);
    let t0 = Instant::now();
    for _ in 0..steps {
        let a = Instant::now();
        sim.compute_flow();
        let b = Instant::now();
        sim.adapt_tubes();
        let c = Instant::now();
        sim.explore();
        let d = Instant::now();
        vudo_physarum::growth::transport_nutrients(&mut sim.net, &sim.params);
        sim.synchronize_oscillations();
        let e = Instant::now();
        tf += (b - a).as_secs_f64();
        ta += (c - b).as_secs_f64();
        te += (d - c).as_secs_f64();
        to += (e - d).as_secs_f64();
        sim.steps += 1;
        if std::env::var("PX_TRACE").is_ok() && sim.steps % 10 == 0 {
            let fs = sim.factor_stats();
            eprintln!("step {} t {:.3}s alive {} n {} nnzL {} flops {:.2}M sn {} analyses {}", sim.steps, t0.elapsed().as_secs_f64(), sim.net.n_alive(), fs.0.n, fs.0.nnz_l, fs.0.flops / 1e6, fs.0.supernodes, fs.1);
        }
    }
    let total = t0.elapsed().as_secs_f64();
    let sum: f64 = sim.net.conductivity.iter().sum();
    let bits = sim.net.conductivity.iter().fold(0u64, |h, c| h.rotate_left(5) ^ c.to_bits());
    println!(
        "side {side} tubes {} steps {steps}: {:.1} steps/s; flow {:.1}% adapt {:.1}% explore {:.1}% other {:.1}%; alive {} analyses {} fs {:?} cg/step {:.2}; sum {sum:e} hash {bits:016x}",
        sim.net.n_tubes(),
        steps as f64 / total,
        100.0 * tf / total,
        100.0 * ta / total,
        100.0 * te / total,
        100.0 * to / total,
        sim.net.n_alive(),
        sim.factor_stats().1,
        sim.factor_stats().0,
        sim.total_cg_iterations as f64 / (steps + 5) as f64,
    );
}
