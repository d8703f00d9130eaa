//! The tubular network (`TubularNetwork` gene): cells, tubes and food sources,
//! stored as flat arrays indexed by cell id / tube id so that the C-ABI can hand
//! out pointers to them. Tubes are never removed from the arrays; pruning clears
//! their `alive` flag so that tube ids stay stable.

/// Conductivity of a tube of radius `r` (Hagen–Poiseuille: D ∝ r⁴; the constant is 1).
pub fn conductivity_of_radius(r: f64) -> f64 {
    let r2 = r * r;
    r2 * r2
}

/// Radius of a tube of conductivity `d` (inverse of [`conductivity_of_radius`]).
pub fn radius_of_conductivity(d: f64) -> f64 {
    // IEEE 754 square root is correctly rounded everywhere (x86 sqrtsd, wasm
    // f64.sqrt): the hardware instruction gives the same bits as libm's
    // software version, which the wasm32 build would otherwise use.
    d.max(0.0).sqrt().sqrt()
}

/// Per-step work vectors of the tube and cell loops (adaptation, nutrients,
/// oscillators), kept between steps so a step does not allocate.
#[derive(Clone, Debug, Default)]
pub struct Scratch {
    pub tubes: Vec<f64>,
    pub cells: Vec<f64>,
    pub cells2: Vec<f64>,
    /// The adaptation's conductivity thresholds, and the radii
    /// (prune, max, min thickness) they were found for.
    pub thresholds: Option<([f64; 3], [f64; 3])>,
}

impl Scratch {
    pub fn memory_bytes(&self) -> usize {
        8 * (self.tubes.capacity() + self.cells.capacity() + self.cells2.capacity())
    }
}

/// `v` emptied and refilled with `n` zeros (its allocation kept).
pub fn zeroed(v: &mut Vec<f64>, n: usize) -> &mut [f64] {
    v.clear();
    v.resize(n, 0.0);
    v
}

#[derive(Clone, Debug, Default)]
pub struct Network {
    // --- cells (PhysarumCell), indexed by cell id
    /// x, y, z per cell.
    pub position: Vec<f64>,
    /// Nutrient level in [0, 1].
    pub nutrient: Vec<f64>,
    /// Oscillation phase in [0, 2π).
    pub phase: Vec<f64>,
    /// Solved pressure per cell.
    pub pressure: Vec<f64>,
    /// 1 if the cell is a food source.
    pub is_food: Vec<u8>,
    // --- tubes (Tube), indexed by tube id
    /// a, b per tube.
    pub ends: Vec<u32>,
    pub length: Vec<f64>,
    /// D_ij (conductivity). `tube.thickness` (radius) is D^(1/4).
    pub conductivity: Vec<f64>,
    /// Q_ij, positive from a to b.
    pub flow: Vec<f64>,
    /// Time since the tube was created.
    pub age: Vec<f64>,
    /// 1 while the tube exists, 0 once pruned.
    pub alive: Vec<u8>,
    // --- food sources, in the order they were declared
    pub food: Vec<u32>,
    n_alive: usize,
    /// Ascending ids of the tubes that may be alive: every alive tube is
    /// here, pruned ones until the next `trim_live`. Per-tube loops walk it
    /// instead of every tube ever made (after pruning most are dead).
    live: Vec<u32>,
}

impl Network {
    pub fn n_cells(&self) -> usize {
        self.nutrient.len()
    }

    pub fn n_tubes(&self) -> usize {
        self.length.len()
    }

    /// Bytes held by the network's arrays (vector capacities).
    pub fn memory_bytes(&self) -> usize {
        8 * (self.position.capacity()
            + self.nutrient.capacity()
            + self.phase.capacity()
            + self.pressure.capacity()
            + self.length.capacity()
            + self.conductivity.capacity()
            + self.flow.capacity()
            + self.age.capacity())
            + self.is_food.capacity()
            + self.alive.capacity()
            + 4 * (self.ends.capacity() + self.food.capacity() + self.live.capacity())
    }

    /// Tubes that may be alive, ascending (check `alive`): a superset of the
    /// alive tubes, at most about twice their number after `trim_live`.
    pub fn live(&self) -> &[u32] {
        &self.live
    }

    /// Drop pruned tubes from `live` once they are half of it.
    pub fn trim_live(&mut self) {
        if self.live.len() > 2 * self.n_alive + 16 {
            let alive = &self.alive;
            self.live.retain(|&t| alive[t as usize] != 0);
        }
    }

    pub fn n_alive(&self) -> usize {
        self.n_alive
    }

    pub fn add_cell(&mut self, x: f64, y: f64, z: f64) -> Result<u32, String> {
        if !(x.is_finite() && y.is_finite() && z.is_finite()) {
            return Err(format!("cell position must be finite, got ({x}, {y}, {z})"));
        }
        if self.n_cells() >= u32::MAX as usize {
            return Err("too many cells".into());
        }
        self.position.extend_from_slice(&[x, y, z]);
        self.nutrient.push(0.0);
        self.phase.push(0.0);
        self.pressure.push(0.0);
        self.is_food.push(0);
        Ok((self.n_cells() - 1) as u32)
    }

    pub fn distance(&self, a: u32, b: u32) -> f64 {
        let (a, b) = (a as usize * 3, b as usize * 3);
        let dx = self.position[a] - self.position[b];
        let dy = self.position[a + 1] - self.position[b + 1];
        let dz = self.position[a + 2] - self.position[b + 2];
        libm::sqrt(dx * dx + dy * dy + dz * dz)
    }

    /// Add a tube; `length <= 0` or NaN means "Euclidean distance between the cells".
    pub fn add_tube(&mut self, a: u32, b: u32, length: f64, conductivity: f64) -> Result<u32, String> {
        let n = self.n_cells() as u32;
        if a >= n || b >= n {
            return Err(format!("tube ({a}, {b}) names a cell that does not exist (have {n} cells)"));
        }
        if a == b {
            return Err(format!("tube ({a}, {b}) is a self-loop"));
        }
        let length = if length.is_nan() || length <= 0.0 { self.distance(a, b) } else { length };
        if !(length.is_finite() && length > 0.0) {
            return Err(format!("tube ({a}, {b}) has no positive length (coincident cells?)"));
        }
        if !(conductivity.is_finite() && conductivity >= 0.0) {
            return Err(format!("tube ({a}, {b}) conductivity must be finite and >= 0"));
        }
        self.ends.extend_from_slice(&[a, b]);
        self.length.push(length);
        self.conductivity.push(conductivity);
        self.flow.push(0.0);
        self.age.push(0.0);
        self.alive.push(1);
        self.n_alive += 1;
        let id = (self.n_tubes() - 1) as u32;
        self.live.push(id);
        Ok(id)
    }

    pub fn set_food(&mut self, food: &[u32]) -> Result<(), String> {
        let n = self.n_cells() as u32;
        let mut seen = vec![0u8; self.n_cells()];
        for &f in food {
            if f >= n {
                return Err(format!("food source {f} does not exist (have {n} cells)"));
            }
            if seen[f as usize] != 0 {
                return Err(format!("food source {f} is listed twice"));
            }
            seen[f as usize] = 1;
        }
        self.is_food = seen;
        self.food = food.to_vec();
        for &f in food {
            self.nutrient[f as usize] = 1.0;
        }
        Ok(())
    }

    pub fn kill_tube(&mut self, t: usize) {
        if self.alive[t] != 0 {
            self.alive[t] = 0;
            self.conductivity[t] = 0.0;
            self.flow[t] = 0.0;
            self.n_alive -= 1;
        }
    }

    /// Number of alive tubes at each cell.
    pub fn degrees(&self) -> Vec<u32> {
        let mut deg = vec![0u32; self.n_cells()];
        for &t in &self.live {
            let t = t as usize;
            if self.alive[t] != 0 {
                deg[self.ends[2 * t] as usize] += 1;
                deg[self.ends[2 * t + 1] as usize] += 1;
            }
        }
        deg
    }

    /// Connected components over alive tubes: `comp[cell]` = smallest cell id in
    /// its component (deterministic union–find).
    pub fn components(&self) -> Vec<u32> {
        let n = self.n_cells();
        let mut parent: Vec<u32> = (0..n as u32).collect();
        fn find(parent: &mut [u32], mut x: u32) -> u32 {
            while parent[x as usize] != x {
                let up = parent[parent[x as usize] as usize];
                parent[x as usize] = up;
                x = up;
            }
            x
        }
        for t in 0..self.n_tubes() {
            if self.alive[t] == 0 {
                continue;
            }
            let ra = find(&mut parent, self.ends[2 * t]);
            let rb = find(&mut parent, self.ends[2 * t + 1]);
            if ra != rb {
                let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
                parent[hi as usize] = lo;
            }
        }
        (0..n as u32).map(|x| find(&mut parent, x)).collect()
    }

    /// Total length of alive tubes.
    pub fn total_length(&self) -> f64 {
        let mut s = 0.0;
        for t in 0..self.n_tubes() {
            if self.alive[t] != 0 {
                s += self.length[t];
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_validation() {
        let mut g = Network::default();
        for i in 0..4 {
            g.add_cell(i as f64, 0.0, 0.0).unwrap();
        }
        g.add_tube(0, 1, f64::NAN, 1.0).unwrap();
        g.add_tube(2, 3, 2.5, 1.0).unwrap();
        assert_eq!(g.length[0], 1.0);
        assert_eq!(g.components(), vec![0, 0, 2, 2]);
        assert!(g.add_tube(0, 9, 1.0, 1.0).is_err());
        assert!(g.add_tube(1, 1, 1.0, 1.0).is_err());
        assert!(g.set_food(&[0, 0]).is_err());
        g.kill_tube(0);
        assert_eq!(g.n_alive(), 1);
        assert_eq!(g.components(), vec![0, 1, 2, 2]);
        assert!((radius_of_conductivity(conductivity_of_radius(0.3)) - 0.3).abs() < 1e-15);
    }

    #[test]
    fn live_list_covers_every_alive_tube_and_sheds_the_pruned() {
        let mut g = Network::default();
        for i in 0..101 {
            g.add_cell(i as f64, 0.0, 0.0).unwrap();
        }
        for i in 0..100 {
            g.add_tube(i, i + 1, f64::NAN, 1.0).unwrap();
        }
        for t in (0..100).filter(|t| t % 10 != 3) {
            g.kill_tube(t);
        }
        let alive: Vec<u32> = (0..100).filter(|&t| g.alive[t as usize] != 0).collect();
        assert!(alive.iter().all(|t| g.live().contains(t)), "a superset before trimming");
        g.trim_live();
        assert_eq!(g.live(), alive.as_slice());
        let t = g.add_tube(0, 100, f64::NAN, 1.0).unwrap();
        assert_eq!(g.live().last(), Some(&t));
        assert!(g.live().windows(2).all(|w| w[0] < w[1]), "ascending");
    }
}
