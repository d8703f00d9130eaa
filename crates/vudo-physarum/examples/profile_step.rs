//! Where a step's time goes on a jittered lattice (development aid):
//! `cargo run --release -p vudo-physarum --example profile_step -- 159 40 3`
//! (side, steps, cg_precond, steps skipped before timing, 0 = oscillators still).
/// CPU time of this thread (Linux; the machine may be shared, wall time is not).
fn cpu_s() -> f64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    s.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) * 1e-9
}
use vudo_physarum::{PhysarumDynamics, Params, Simulation};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("integer argument")).collect();
    let (side, steps, precond) = (args.first().copied().unwrap_or(159), args.get(1).copied().unwrap_or(40), args.get(2).copied().unwrap_or(3));
    let skip = args.get(3).copied().unwrap_or(5);
    let mut v = vec![f64::NAN; vudo_physarum::params::N_PARAMS];
    v[vudo_physarum::params::P_MODEL] = 1.0;
    v[vudo_physarum::params::P_DT] = 0.2;
    v[vudo_physarum::params::P_SCHEME] = 2.0;
    v[vudo_physarum::params::P_PRUNE_THRESHOLD] = 0.03;
    v[vudo_physarum::params::P_CG_PRECOND] = precond as f64;
    if args.get(4) == Some(&0) {
        // Oscillators still, as in the benchmark (its anchors have none).
        v[vudo_physarum::params::P_SYNC_STRENGTH] = 0.0;
        v[vudo_physarum::params::P_OSC_FREQUENCY] = 0.0;
    }
    let mut sim = Simulation::new(Params::from_slice(&v).unwrap(), 1).unwrap();
    let mut seed = side as u64;
    let mut jitter = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.5
    };
    for y in 0..side {
        for x in 0..side {
            sim.add_node(x as f64 + jitter(), y as f64 + jitter(), 0.0).unwrap();
        }
    }
    for y in 0..side {
        for x in 0..side {
            let v = (y * side + x) as u32;
            if x + 1 < side {
                sim.add_edge(v, v + 1, f64::NAN).unwrap();
            }
            if y + 1 < side {
                sim.add_edge(v, v + side as u32, f64::NAN).unwrap();
            }
        }
    }
    let s = side - 1;
    let at = |i: usize, j: usize| (j * side + i) as u32;
    sim.set_food(&[at(1, 1), at(s - 1, 1), at(1, s - 1), at(s - 1, s - 1), at(s / 2, s / 2), at(s / 2, 1)]).unwrap();
    let (mut tf, mut tr, mut wf, mut wr) = (0.0, 0.0, 0.0, 0.0);
    for k in 0..steps {
        // The CPU clock is a file read (microseconds): read outside the wall-clock windows.
        let t0 = cpu_s();
        let w0 = std::time::Instant::now();
        sim.compute_flow();
        let w1 = std::time::Instant::now();
        let t1 = cpu_s();
        let w1b = std::time::Instant::now();
        sim.adapt_tubes();
        sim.explore();
        sim.transport_nutrients();
        sim.synchronize_oscillations();
        let w2 = std::time::Instant::now();
        let t2 = cpu_s();
        if k >= skip {
            tf += t1 - t0;
            tr += t2 - t1;
            wf += (w1 - w0).as_secs_f64();
            wr += (w2 - w1b).as_secs_f64();
        }
    }
    let (st, analyses) = sim.factor_stats();
    let n = (steps - skip) as f64;
    println!(
        "CPU (tick-grained): flow {:.2} ms/step, rest {:.2} ms/step; wall: flow {:.3} ms/step, rest {:.3} ms/step; \
         {:?}, analyses {analyses}, alive {}, madd/step {:.2}M",
        1e3 * tf / n,
        1e3 * tr / n,
        1e3 * wf / n,
        1e3 * wr / n,
        st,
        sim.net.n_alive(),
        sim.total_factor_flops / steps as f64 / 1e6
    );
}
