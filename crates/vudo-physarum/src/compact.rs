//! The flow problem compacted to the part of the network that can carry flow.
//!
//! Tubes are never removed from the network's arrays (pruning clears `alive`),
//! so late in a run most tubes and cells are dead weight. The pressure solve
//! works on a compact copy instead: the cells touched by an alive tube plus
//! the food cells, renumbered in cell order, and the alive tubes between them.
//! The copy is rebuilt only when growth adds cells or tubes, the food changes,
//! or pruning has left fewer than `SHRINK` of its tubes alive; in between,
//! tubes pruned since the rebuild simply carry zero weight. Keeping the copy
//! stable also keeps the sparse Cholesky analysis valid across pruning steps.

use crate::graph::Network;

const NONE: u32 = u32::MAX;
/// Rebuild once fewer than this fraction of the compact tubes are alive.
pub const SHRINK: f64 = 0.7;

#[derive(Clone, Debug, Default)]
pub struct Compact {
    /// Global ids of the compact tubes and cells.
    pub tubes: Vec<u32>,
    pub cells: Vec<u32>,
    /// Endpoints of the compact tubes, in compact cell ids.
    pub ends: Vec<u32>,
    /// Food cells in compact ids (same order as the network's food list).
    pub food: Vec<u32>,
    built_tubes: usize,
    built_cells: usize,
    built_food: Vec<u32>,
    pub rebuilds: u64,
}

impl Compact {
    /// Rebuild if needed; returns true when rebuilt (the caller then clears
    /// the state of tubes and cells that left the compact set).
    pub fn refresh(&mut self, net: &Network) -> bool {
        let stale = self.built_tubes != net.n_tubes()
            || self.built_cells != net.n_cells()
            || self.built_food != net.food
            || (net.n_alive() as f64) < SHRINK * self.tubes.len() as f64;
        if !stale {
            return false;
        }
        let n = net.n_cells();
        let mut local = vec![NONE; n];
        for t in 0..net.n_tubes() {
            if net.alive[t] != 0 {
                local[net.ends[2 * t] as usize] = 0;
                local[net.ends[2 * t + 1] as usize] = 0;
            }
        }
        for &f in &net.food {
            local[f as usize] = 0;
        }
        self.cells.clear();
        for (c, l) in local.iter_mut().enumerate() {
            if *l == 0 {
                *l = self.cells.len() as u32;
                self.cells.push(c as u32);
            }
        }
        self.tubes.clear();
        self.ends.clear();
        for t in 0..net.n_tubes() {
            if net.alive[t] != 0 {
                self.tubes.push(t as u32);
                self.ends.push(local[net.ends[2 * t] as usize]);
                self.ends.push(local[net.ends[2 * t + 1] as usize]);
            }
        }
        self.food.clear();
        self.food.extend(net.food.iter().map(|&f| local[f as usize]));
        self.built_tubes = net.n_tubes();
        self.built_cells = n;
        self.built_food.clear();
        self.built_food.extend_from_slice(&net.food);
        self.rebuilds += 1;
        true
    }

    pub fn memory_bytes(&self) -> usize {
        4 * (self.tubes.capacity()
            + self.cells.capacity()
            + self.ends.capacity()
            + self.food.capacity()
            + self.built_food.capacity())
    }

    /// Connected components of the compact graph over tubes with `w > 0`:
    /// `comp[cell]` = smallest compact cell id in its component.
    pub fn components(&self, w: &[f64], comp: &mut Vec<u32>) {
        let n = self.cells.len();
        comp.clear();
        comp.extend(0..n as u32);
        fn find(parent: &mut [u32], mut x: u32) -> u32 {
            while parent[x as usize] != x {
                let up = parent[parent[x as usize] as usize];
                parent[x as usize] = up;
                x = up;
            }
            x
        }
        for (t, &wt) in w.iter().enumerate() {
            if wt == 0.0 {
                continue;
            }
            let ra = find(comp, self.ends[2 * t]);
            let rb = find(comp, self.ends[2 * t + 1]);
            if ra != rb {
                let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
                comp[hi as usize] = lo;
            }
        }
        for x in 0..n as u32 {
            let r = find(comp, x);
            comp[x as usize] = r;
        }
    }
}
