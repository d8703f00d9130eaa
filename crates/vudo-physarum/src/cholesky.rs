//! Sparse `L D Lᵀ` factorization of the grounded, compacted Kirchhoff
//! Laplacian, for the Cholesky solver path.
//!
//! Theory of operation
//! -------------------
//! * **Compaction.** Only cells that are not grounded enter the system, and
//!   only alive tubes with w > 0 joining two such cells give off-diagonal
//!   entries. Dead tubes and pinned cells cost nothing.
//! * **Analysis** (`analyze`), done once per sparsity pattern: a
//!   fill-reducing ordering (`ordering::fill_reducing`: nested dissection on
//!   lattice-like graphs, AMD on sparse ones), the upper pattern of the permuted
//!   matrix with a slot per tube (parallel tubes share a slot), the elimination
//!   tree and the full pattern of L (row structures and column pointers),
//!   and the update schedule of the numeric factorization: which descendant
//!   updates which supernode, in which order, and where each of its rows
//!   lands in the target block (relative indices), so that no factorization
//!   searches rows or maps them again.
//! * **Reuse while the pattern holds.** Pruning only removes tubes and pins
//!   more cells (a component that splits off gets its own ground), so the old
//!   analysis stays valid as a *superset* pattern: removed tubes are zeros and
//!   newly pinned cells become identity rows. The analysis is redone when a new
//!   tube or cell appears (growth), or when the live pattern has shrunk below
//!   `SHRINK` of the analysed one (a fresh ordering of the smaller graph is
//!   cheaper to factor). A sparse, tree-like graph re-analysed after pruning
//!   keeps its minimum-degree order restricted to the cells left (the caller
//!   names cells by stable ids, `set_cell_ids`, since it renumbers them):
//!   no more fill than before, and no new ordering to compute.
//! * **Numeric factorization** (`factor`), every solve: left-looking
//!   supernodal LDLᵀ. Columns with the same structure below form a supernode
//!   stored as one dense column-major block; a supernode gathers the updates
//!   of its descendants (as dense products, then scattered) and factors its
//!   block by panels of four columns. A block is assembled (zeroed, then the
//!   matrix entries written) just before it is factored, never the whole
//!   factor at once. Descendants of up to `SMALL` columns (most of them on
//!   lattices) update in plain loops; wider ones, and the panels, run in
//!   register tiles (`tiles`:
//!   AVX2 chosen at run time, wasm simd128, or scalar) in which every
//!   element still sums its terms one by one in a fixed order; only the four
//!   basic operations, no fused multiply–add: bit-identical on native and
//!   wasm32, whatever the vector width.
//! * **Solves**: supernodal; rows below a supernode are updated in the same
//!   kind of row tiles (forward) or by fixed four-way partial sums (backward).
//!   The first solve after a factorization (`factor_solve`) runs each
//!   supernode's forward step right after factoring it, while its block is
//!   in cache: one pass over L from memory instead of two, same bits.
//!
//! Memory: O(nnz(L) + V + E), all in reusable vectors.

use crate::ordering;
use crate::tiles;

const NONE: u32 = u32::MAX;

/// One update of the schedule: descendant d's rows from p1 on (the first c
/// of them are the target's columns), landing at `urel[rel..]`. (`rel` is a
/// u64 so that the record has the same size on 32- and 64-bit targets, and
/// `memory_bytes` the same value.)
#[derive(Clone, Copy, Debug, Default)]
struct Update {
    d: u32,
    p1: u32,
    c: u32,
    rel: u64,
}
/// Re-analyse when fewer than this fraction of the analysed off-diagonal
/// entries (or cells) are still live.
pub const SHRINK: f64 = 0.7;

/// Counters of the factorization work (deterministic, platform independent).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FactorStats {
    /// Unknowns of the factored system.
    pub n: usize,
    /// Off-diagonal entries of L.
    pub nnz_l: usize,
    /// Multiply–add pairs of one numeric factorization.
    pub flops: f64,
    /// Supernodes (dense column blocks) of L.
    pub supernodes: usize,
}

#[derive(Clone, Debug, Default)]
pub struct Cholesky {
    analysed: bool,
    /// Stable ids of the system's cells (`set_cell_ids`), and of the
    /// analysed unknowns in elimination order (empty: not known).
    cell_ids: Vec<u32>,
    pos_id: Vec<u32>,
    /// The analysed graph was sparse, so its order is minimum degree.
    sparse_order: bool,
    /// cell -> permuted unknown (NONE: not in the system at analysis time).
    cell_pos: Vec<u32>,
    /// permuted unknown -> cell.
    pos_cell: Vec<u32>,
    /// tube -> slot of its entry in `ax` (NONE: not in the pattern).
    tube_slot: Vec<u32>,
    n_tubes_analysed: usize,
    live_slots_analysed: usize,
    /// Upper pattern of the permuted A by columns: rows < k of column k.
    ap: Vec<u32>,
    ai: Vec<u32>,
    ax: Vec<f64>,
    diag: Vec<f64>,
    /// Elimination tree.
    parent: Vec<u32>,
    /// Supernodes: columns `sn_first[s]..sn_first[s+1]`; `sn_of[column]`.
    sn_first: Vec<u32>,
    sn_of: Vec<u32>,
    /// Row list of supernode s (its own columns, then the rows below,
    /// ascending) in `srows[srp[s]..srp[s+1]]`.
    srp: Vec<u32>,
    srows: Vec<u32>,
    /// Dense column-major block of supernode s (rows × columns) at
    /// `lx[sxp[s]..]`; the unit diagonal and upper triangle are unused.
    sxp: Vec<usize>,
    lx: Vec<f64>,
    /// Assembly lists, grouped by supernode: the slots of supernode s are
    /// `sn_slot[sn_slot_ptr[s]..sn_slot_ptr[s+1]]`, landing at `sn_dest[..]`
    /// in `lx`; `diag_dest[j]` is where diagonal entry j lands. A supernode's
    /// block is zeroed and assembled just before it is factored (no pass
    /// over the whole factor, and the block is hot in cache when used).
    sn_slot_ptr: Vec<u32>,
    sn_slot: Vec<u32>,
    sn_dest: Vec<usize>,
    diag_dest: Vec<usize>,
    /// Update schedule, fixed by the analysis: supernode s receives the
    /// updates `upd[upd_ptr[s]..upd_ptr[s+1]]`, in this order.
    upd_ptr: Vec<u32>,
    upd: Vec<Update>,
    /// Relative row positions of the updates: row p1 + r of descendant d
    /// lands in row `urel[rel + r]` of the target's block.
    urel: Vec<u32>,
    /// Scaled rows of the current descendant (or panel) for the register
    /// tiles, four target columns interleaved.
    tbuf: Vec<f64>,
    /// Tests: every update through the register tiles (no `small_update`).
    #[cfg(test)]
    tiles_only: bool,
    /// Solve scratch: one supernode's values gathered.
    yb: Vec<f64>,
    d: Vec<f64>,
    y: Vec<f64>,
    pub stats: FactorStats,
    /// Analyses done so far.
    pub analyses: u64,
    /// Analyses that computed a fresh fill-reducing ordering (the others
    /// restricted the last one).
    pub fresh_orders: u64,
}

/// Is tube `t` an off-diagonal entry of the reduced system?
#[inline(always)]
fn reduced(ends: &[u32], w: &[f64], grounded: &[u8], t: usize) -> Option<(usize, usize)> {
    let (a, b) = (ends[2 * t] as usize, ends[2 * t + 1] as usize);
    if w[t] == 0.0 || a == b || grounded[a] != 0 || grounded[b] != 0 {
        None
    } else {
        Some((a, b))
    }
}

/// Postorder of a forest given by `parent` (NONE for roots): roots and
/// children in ascending order. Returns the columns in postorder.
fn postorder(parent: &[u32]) -> Vec<u32> {
    let n = parent.len();
    let mut head = vec![NONE; n];
    let mut next = vec![NONE; n];
    // Prepend in descending order so that each child list is ascending.
    for j in (0..n).rev() {
        let p = parent[j];
        if p != NONE {
            next[j] = head[p as usize];
            head[p as usize] = j as u32;
        }
    }
    let mut out = Vec::with_capacity(n);
    let mut stack: Vec<u32> = Vec::new();
    for root in 0..n {
        if parent[root] != NONE {
            continue;
        }
        stack.push(root as u32);
        while let Some(&top) = stack.last() {
            let t = top as usize;
            let child = head[t];
            if child == NONE {
                out.push(top);
                stack.pop();
            } else {
                head[t] = next[child as usize];
                stack.push(child);
            }
        }
    }
    out
}

/// Descendants of at most this many columns update their targets in plain
/// loops (`small_update`) rather than register tiles.
const SMALL: usize = 7;

/// The part of a descendant that updates one target: its block `l`
/// (column-major, `nrd` rows per column) and pivots `d`; its rows from `p1`
/// on reach the target, the first `c` of them in the target's columns.
struct Descendant<'a> {
    l: &'a [f64],
    d: &'a [f64],
    nrd: usize,
    p1: usize,
    c: usize,
}

/// Subtract descendant `src`'s contribution L_d[p1.., :] · D_d ·
/// L_d[p1..p1+c, :]ᵀ (lower part) from the target block `tgt` (`nr` rows
/// per column): row p1 + r lands in row `rel[r]`, and target column jj < c
/// is column `rel[jj]`. Each element sums its terms in the descendant's
/// column order from +0, then is subtracted from its target (the order of
/// the scalar loop, so neither the path nor the vector width changes the
/// rounding). This one, for K <= `SMALL` columns, in plain loops.
#[inline(always)]
fn small_update<const K: usize>(src: &Descendant, rel: &[u32], tgt: &mut [f64], nr: usize) {
    let m = rel.len();
    let (nrd, p1) = (src.nrd, src.p1);
    // Each column slice is exactly m long, so the row loop needs no bounds checks on it.
    let cols: [&[f64]; K] = core::array::from_fn(|k| &src.l[k * nrd + p1..k * nrd + p1 + m]);
    for jj in 0..src.c {
        let t: [f64; K] = core::array::from_fn(|k| cols[k][jj] * src.d[k]);
        let col = &mut tgt[rel[jj] as usize * nr..(rel[jj] as usize + 1) * nr];
        for r in jj..m {
            let mut acc = 0.0;
            for k in 0..K {
                acc += cols[k][r] * t[k];
            }
            col[rel[r] as usize] -= acc;
        }
    }
}

/// `small_update` for any number of columns, in R × 4 register tiles
/// (`tbuf`: scratch for the scaled rows of the target columns).
#[inline(always)]
fn tile_update<const AVX: bool>(src: &Descendant, rel: &[u32], tgt: &mut [f64], nr: usize, tbuf: &mut Vec<f64>) {
    let (nrd, p1, c) = (src.nrd, src.p1, src.c);
    let ncd = src.d.len();
    let m = rel.len();
    // T: for each group of four target columns, ncd rows of
    // (L_d[p1 + jj, k] · d_k) for its four jj, four lanes at a time: lanes
    // past the last column take the rows that follow (0 past the block) and
    // only feed tile columns that are never stored.
    let groups = c.div_ceil(4);
    if tbuf.len() < groups * ncd * 4 {
        tbuf.resize(groups * ncd * 4, 0.0);
    }
    for (g, tg) in tbuf[..groups * ncd * 4].chunks_exact_mut(ncd * 4).enumerate() {
        for (k, out) in tg.chunks_exact_mut(4).enumerate() {
            let at = k * nrd + p1 + 4 * g;
            let x: [f64; 4] = match src.l.get(at..at + 4) {
                Some(x) => x.try_into().expect("four lanes"),
                None => core::array::from_fn(|q| src.l.get(at + q).copied().unwrap_or(0.0)),
            };
            for q in 0..4 {
                out[q] = x[q] * src.d[k];
            }
        }
    }
    let mut acc: tiles::Tile = [[0.0; 8]; 4];
    for g in 0..groups {
        let j0 = 4 * g;
        let width = 4.min(c - j0);
        let t = &tbuf[g * ncd * 4..(g + 1) * ncd * 4];
        let mut tc = [0usize; 4];
        for (j, v) in tc.iter_mut().enumerate().take(width) {
            *v = rel[j0 + j] as usize * nr;
        }
        let mut i = j0;
        while i < m {
            let h = tiles::sum(AVX, m - i, src.l, p1 + i, nrd, ncd, t, &mut acc);
            let rel = &rel[i..i + h];
            // Only the first tile of a group reaches above the diagonal.
            let r0 = |j: usize| (j0 + j).saturating_sub(i).min(h);
            if i >= j0 + 4 && (rel[h - 1] - rel[0]) as usize == h - 1 {
                // Rows landing on consecutive target rows (most tiles):
                // subtracted as whole vectors, the same operations.
                let at = rel[0] as usize;
                match h {
                    8 => sub_run::<8>(tgt, &tc[..width], at, &acc),
                    4 => sub_run::<4>(tgt, &tc[..width], at, &acc),
                    _ => {
                        for j in 0..width {
                            for (x, a) in tgt[tc[j] + at..tc[j] + at + h].iter_mut().zip(&acc[j]) {
                                *x -= a;
                            }
                        }
                    }
                }
            } else {
                for j in 0..width {
                    let col = &mut tgt[tc[j]..tc[j] + nr];
                    for r in r0(j)..h {
                        col[rel[r] as usize] -= acc[j][r];
                    }
                }
            }
            i += h;
        }
    }
}

/// Forward substitution of T rows below a supernode (rows i.. of its
/// block `blk`, `nr` rows per column; `own`: its solved values): each row
/// subtracts the columns' terms in ascending order, skipping zero values.
#[inline(always)]
fn forward_rows<const T: usize>(y: &mut [f64], own: &[f64], blk: &[f64], rows: &[u32], nr: usize, i: usize) {
    let mut acc = [0.0f64; T];
    for (q, a) in acc.iter_mut().enumerate() {
        *a = y[rows[i + q] as usize];
    }
    for (j, &yj) in own.iter().enumerate() {
        if yj != 0.0 {
            let a: &[f64; T] = blk[j * nr + i..j * nr + i + T].try_into().expect("T rows");
            for q in 0..T {
                acc[q] -= a[q] * yj;
            }
        }
    }
    for (q, &a) in acc.iter().enumerate() {
        y[rows[i + q] as usize] = a;
    }
}

/// tgt[tc[j] + at + r] -= acc[j][r] for the tile's columns j and H rows r.
#[inline(always)]
fn sub_run<const H: usize>(tgt: &mut [f64], tc: &[usize], at: usize, acc: &tiles::Tile) {
    for (j, &c) in tc.iter().enumerate() {
        let dst: &mut [f64; H] = (&mut tgt[c + at..c + at + H]).try_into().expect("H rows");
        for r in 0..H {
            dst[r] -= acc[j][r];
        }
    }
}

/// Where supernode s lives: columns `f..l`, row list `srows[r0..r0 + nr]`
/// (its own columns first), dense block `lx[x0..x0 + nr·(l − f)]`.
#[derive(Clone, Copy)]
struct Span {
    f: usize,
    l: usize,
    r0: usize,
    nr: usize,
    x0: usize,
}

impl Span {
    #[inline(always)]
    fn of(sn_first: &[u32], srp: &[u32], sxp: &[usize], s: usize) -> Span {
        let r0 = srp[s] as usize;
        Span { f: sn_first[s] as usize, l: sn_first[s + 1] as usize, r0, nr: srp[s + 1] as usize - r0, x0: sxp[s] }
    }

    #[inline(always)]
    fn nc(&self) -> usize {
        self.l - self.f
    }

    #[inline(always)]
    fn rows(&self) -> core::ops::Range<usize> {
        self.r0..self.r0 + self.nr
    }

    #[inline(always)]
    fn block(&self) -> core::ops::Range<usize> {
        self.x0..self.x0 + self.nr * self.nc()
    }
}

impl Cholesky {
    #[inline(always)]
    fn span(&self, s: usize) -> Span {
        Span::of(&self.sn_first, &self.srp, &self.sxp, s)
    }

    /// Bytes held by the factorization's vectors.
    pub fn memory_bytes(&self) -> usize {
        4 * (self.cell_pos.capacity()
            + self.pos_cell.capacity()
            + self.tube_slot.capacity()
            + self.ap.capacity()
            + self.ai.capacity()
            + self.parent.capacity()
            + self.sn_first.capacity()
            + self.sn_of.capacity()
            + self.srp.capacity()
            + self.srows.capacity()
            + self.upd_ptr.capacity()
            + self.urel.capacity()
            + self.sn_slot_ptr.capacity()
            + self.sn_slot.capacity()
            + self.cell_ids.capacity()
            + self.pos_id.capacity())
            + 8 * (self.sxp.capacity() + self.sn_dest.capacity() + self.diag_dest.capacity())
            + std::mem::size_of::<Update>() * self.upd.capacity()
            + 8 * (self.ax.capacity()
                + self.diag.capacity()
                + self.lx.capacity()
                + self.d.capacity()
                + self.y.capacity()
                + self.yb.capacity()
                + self.tbuf.capacity())
    }

    /// The upper pattern of the matrix permuted by `ipos` (local cell ->
    /// unknown), by columns, with one slot per distinct entry and the slot of
    /// every tube.
    fn build_pattern(&mut self, ends: &[u32], w: &[f64], grounded: &[u8], local: &[u32], ipos: &[u32]) {
        let nc = grounded.len();
        let nt = w.len();
        let n = ipos.len();
        self.cell_pos.clear();
        self.cell_pos.resize(nc, NONE);
        self.pos_cell.clear();
        self.pos_cell.resize(n, 0);
        for c in 0..nc {
            if local[c] != NONE {
                let k = ipos[local[c] as usize];
                self.cell_pos[c] = k;
                self.pos_cell[k as usize] = c as u32;
            }
        }
        // Upper pattern by columns: entry (min, max) in column max.
        self.ap.clear();
        self.ap.resize(n + 1, 0);
        for t in 0..nt {
            if let Some((a, b)) = reduced(ends, w, grounded, t) {
                let (i, j) = (self.cell_pos[a], self.cell_pos[b]);
                self.ap[i.max(j) as usize + 1] += 1;
            }
        }
        for k in 0..n {
            self.ap[k + 1] += self.ap[k];
        }
        let mut fill: Vec<u32> = self.ap[..n].to_vec();
        let raw = self.ap[n] as usize;
        let mut rows = vec![0u32; raw];
        let mut tube_of = vec![0u32; raw];
        for t in 0..nt {
            if let Some((a, b)) = reduced(ends, w, grounded, t) {
                let (i, j) = (self.cell_pos[a], self.cell_pos[b]);
                let q = fill[i.max(j) as usize] as usize;
                rows[q] = i.min(j);
                tube_of[q] = t as u32;
                fill[i.max(j) as usize] += 1;
            }
        }
        // Sort each column by row (insertion sort: columns are short) and
        // merge parallel tubes into one slot.
        self.tube_slot.clear();
        self.tube_slot.resize(nt, NONE);
        self.ai.clear();
        let mut start = 0usize;
        let mut new_ap = vec![0u32; n + 1];
        for k in 0..n {
            let end = self.ap[k + 1] as usize;
            for q in start + 1..end {
                let (r, t) = (rows[q], tube_of[q]);
                let mut m = q;
                while m > start && (rows[m - 1] > r || (rows[m - 1] == r && tube_of[m - 1] > t)) {
                    rows[m] = rows[m - 1];
                    tube_of[m] = tube_of[m - 1];
                    m -= 1;
                }
                rows[m] = r;
                tube_of[m] = t;
            }
            let col_start = self.ai.len();
            for q in start..end {
                if self.ai.len() == col_start || *self.ai.last().expect("non-empty") != rows[q] {
                    self.ai.push(rows[q]);
                }
                self.tube_slot[tube_of[q] as usize] = (self.ai.len() - 1) as u32;
            }
            new_ap[k + 1] = self.ai.len() as u32;
            start = end;
        }
        self.ap = new_ap;
        self.ax.clear();
        self.ax.resize(self.ai.len(), 0.0);
        self.live_slots_analysed = raw;
        self.n_tubes_analysed = nt;
    }

    /// Elimination tree of the current upper pattern, and the number of
    /// off-diagonal entries of each column of L (Liu; the `flag` walk visits
    /// each entry of L once).
    fn etree(&mut self, flag: &mut [u32], cnt: &mut [u32]) {
        let n = self.pos_cell.len();
        self.parent.clear();
        self.parent.resize(n, NONE);
        for c in cnt.iter_mut() {
            *c = 0;
        }
        for k in 0..n {
            flag[k] = k as u32;
            for q in self.ap[k] as usize..self.ap[k + 1] as usize {
                let mut i = self.ai[q] as usize;
                while flag[i] != k as u32 {
                    if self.parent[i] == NONE {
                        self.parent[i] = k as u32;
                    }
                    cnt[i] += 1;
                    flag[i] = k as u32;
                    i = self.parent[i] as usize;
                }
            }
        }
    }

    /// Stable ids of the cells of the systems to come (index: the cell
    /// numbers the solves are given, which may be renumbered between
    /// analyses), so that an analysis can recognise the cells of the last one.
    pub fn set_cell_ids(&mut self, ids: &[u32]) {
        self.cell_ids.clear();
        self.cell_ids.extend_from_slice(ids);
    }

    /// The last analysis's elimination order restricted to the cells of the
    /// new system (`local`: cell -> new unknown, n of them; `xadj`/`adj`: its
    /// graph), or None when the ids are not known or the system is not a
    /// subgraph of the analysed one (a cell or a tube new to it).
    fn restricted_order(&self, local: &[u32], n: usize, xadj: &[u32], adj: &[u32]) -> Option<Vec<u32>> {
        if self.cell_ids.len() != local.len() || self.pos_id.is_empty() {
            return None;
        }
        let top = self.cell_ids.iter().chain(&self.pos_id).max().map_or(0, |&m| m as usize + 1);
        let mut old_of_id = vec![NONE; top];
        for (k, &id) in self.pos_id.iter().enumerate() {
            old_of_id[id as usize] = k as u32;
        }
        let mut old_of_local = vec![NONE; n];
        for (c, &l) in local.iter().enumerate() {
            if l != NONE {
                let k = old_of_id[self.cell_ids[c] as usize];
                if k == NONE {
                    return None;
                }
                old_of_local[l as usize] = k;
            }
        }
        // Every tube must join cells the analysed pattern already joined
        // (its columns are sorted by row).
        for l in 0..n {
            for &m in &adj[xadj[l] as usize..xadj[l + 1] as usize] {
                let (a, b) = (old_of_local[l], old_of_local[m as usize]);
                let (lo, hi) = (a.min(b), a.max(b) as usize);
                if self.ai[self.ap[hi] as usize..self.ap[hi + 1] as usize].binary_search(&lo).is_err() {
                    return None;
                }
            }
        }
        let mut perm = vec![NONE; self.pos_id.len()];
        for (l, &k) in old_of_local.iter().enumerate() {
            perm[k as usize] = l as u32;
        }
        perm.retain(|&l| l != NONE);
        Some(perm)
    }

    /// Symbolic analysis of the current pattern.
    fn analyze(&mut self, ends: &[u32], w: &[f64], grounded: &[u8]) {
        let nc = grounded.len();
        let nt = w.len();
        // Compact: cells in the system, in cell order.
        let mut local = vec![NONE; nc];
        let mut n = 0usize;
        for c in 0..nc {
            if grounded[c] == 0 {
                local[c] = n as u32;
                n += 1;
            }
        }
        // Symmetric adjacency of the compact graph (CSR), for the ordering.
        let mut xadj = vec![0u32; n + 1];
        for t in 0..nt {
            if let Some((a, b)) = reduced(ends, w, grounded, t) {
                xadj[local[a] as usize + 1] += 1;
                xadj[local[b] as usize + 1] += 1;
            }
        }
        for k in 0..n {
            xadj[k + 1] += xadj[k];
        }
        let mut fill: Vec<u32> = xadj[..n].to_vec();
        let mut adj = vec![0u32; xadj[n] as usize];
        for t in 0..nt {
            if let Some((a, b)) = reduced(ends, w, grounded, t) {
                let (la, lb) = (local[a] as usize, local[b] as usize);
                adj[fill[la] as usize] = lb as u32;
                fill[la] += 1;
                adj[fill[lb] as usize] = la as u32;
                fill[lb] += 1;
            }
        }
        // A sparse (tree-like) graph that only lost cells and tubes since a
        // sparse analysis keeps that minimum-degree order, restricted to
        // what is left: eliminating a subgraph in the induced order fills
        // no more than the old factor did (its filled graph is a subgraph of
        // the old one), and ordering afresh would cost more than it saves.
        // Lattices are ordered afresh (dissection gives way to minimum degree).
        let sparse = ordering::is_sparse(n, &xadj);
        let kept = if sparse && self.sparse_order { self.restricted_order(&local, n, &xadj, &adj) } else { None };
        let perm = kept.unwrap_or_else(|| {
            self.fresh_orders += 1;
            ordering::fill_reducing(n, &xadj, &adj)
        });
        self.sparse_order = sparse;
        drop(adj);
        drop(xadj);
        let mut ipos = vec![0u32; n];
        for (k, &old) in perm.iter().enumerate() {
            ipos[old as usize] = k as u32;
        }
        drop(perm);
        self.build_pattern(ends, w, grounded, &local, &ipos);
        // Postorder the elimination tree (children in ascending order) so that
        // every subtree is a contiguous range of columns: supernodes can then
        // absorb their children.
        let mut flag = vec![NONE; n];
        let mut cnt = vec![0u32; n];
        self.etree(&mut flag, &mut cnt);
        let post = postorder(&self.parent);
        let mut newpos = vec![0u32; n];
        for (k, &old) in post.iter().enumerate() {
            newpos[old as usize] = k as u32;
        }
        for v in ipos.iter_mut() {
            *v = newpos[*v as usize];
        }
        drop(newpos);
        drop(post);
        self.build_pattern(ends, w, grounded, &local, &ipos);
        drop(local);
        drop(ipos);
        for f in flag.iter_mut() {
            *f = NONE;
        }
        self.etree(&mut flag, &mut cnt);
        let mut flops = 0.0f64;
        let mut nnz = 0usize;
        for &c in &cnt {
            let c = c as f64;
            flops += c * (c + 1.0) * 0.5;
            nnz += c as usize;
        }
        // Fundamental supernodes: column j joins j−1's supernode when j is
        // j−1's parent and their structures below j coincide. Then relaxed
        // amalgamation: a supernode absorbs the group just before it when that
        // group hangs below it in the (postordered) tree and few explicit
        // zeros are added (the thresholds CHOLMOD uses by default).
        let mut fund: Vec<u32> = Vec::new();
        for j in 0..n {
            if j == 0 || !(self.parent[j - 1] == j as u32 && cnt[j - 1] == cnt[j] + 1) {
                fund.push(j as u32);
            }
        }
        fund.push(n as u32);
        self.sn_first.clear();
        if n > 0 {
            let true_nz = |f: usize, l: usize| (f..l).map(|j| cnt[j] as f64 + 1.0).sum::<f64>();
            let mut g_first = fund[0] as usize;
            let mut g_true = true_nz(fund[0] as usize, fund[1] as usize);
            for s in 1..fund.len() - 1 {
                let (f, l) = (fund[s] as usize, fund[s + 1] as usize);
                let t = true_nz(f, l);
                if self.parent[f - 1] == f as u32 {
                    let nc = (l - g_first) as f64;
                    let nr = nc + cnt[l - 1] as f64;
                    let entries = nc * nr - nc * (nc - 1.0) * 0.5;
                    let z = 1.0 - (g_true + t) / entries;
                    if nc <= 4.0 || (nc <= 16.0 && z < 0.8) || (nc <= 48.0 && z < 0.1) || z < 0.05 {
                        g_true += t;
                        continue;
                    }
                }
                self.sn_first.push(g_first as u32);
                g_first = f;
                g_true = t;
            }
            self.sn_first.push(g_first as u32);
        }
        self.sn_first.push(n as u32);
        self.sn_of.clear();
        self.sn_of.resize(n, 0);
        for s in 0..self.sn_first.len() - 1 {
            for j in self.sn_first[s]..self.sn_first[s + 1] {
                self.sn_of[j as usize] = s as u32;
            }
        }
        let ns = self.sn_first.len() - 1;
        // Row lists (own columns, then the rows below) and dense block offsets.
        self.srp.clear();
        self.srp.push(0);
        self.sxp.clear();
        self.sxp.push(0);
        let mut below = vec![0u32; ns];
        for s in 0..ns {
            let (f, l) = (self.sn_first[s] as usize, self.sn_first[s + 1] as usize);
            let nc = l - f;
            let nr = nc + cnt[l - 1] as usize;
            below[s] = nc as u32;
            self.srp.push(self.srp[s] + nr as u32);
            self.sxp.push(self.sxp[s] + nr * nc);
        }
        self.srows.clear();
        self.srows.resize(self.srp[ns] as usize, 0);
        for s in 0..ns {
            let (f, l) = (self.sn_first[s] as usize, self.sn_first[s + 1] as usize);
            for j in f..l {
                self.srows[self.srp[s] as usize + j - f] = j as u32;
            }
        }
        // Row k of L reaches, up the elimination tree, every column j < k with
        // L(k, j) != 0: k belongs below each supernode met (rows ascending).
        for f in flag.iter_mut() {
            *f = NONE;
        }
        let mut sflag = vec![NONE; ns];
        for k in 0..n {
            flag[k] = k as u32;
            for q in self.ap[k] as usize..self.ap[k + 1] as usize {
                let mut i = self.ai[q] as usize;
                while flag[i] != k as u32 {
                    flag[i] = k as u32;
                    let s = self.sn_of[i] as usize;
                    if sflag[s] != k as u32 && k >= self.sn_first[s + 1] as usize {
                        sflag[s] = k as u32;
                        self.srows[self.srp[s] as usize + below[s] as usize] = k as u32;
                        below[s] += 1;
                    }
                    i = self.parent[i] as usize;
                }
            }
        }
        // Where each matrix entry lands in the blocks: the lower entry (k, i),
        // i < k, of slot q sits in column i's supernode.
        let mut relpos = vec![0u32; n];
        let mut lo_ptr = vec![0u32; n + 1];
        for &i in &self.ai {
            lo_ptr[i as usize + 1] += 1;
        }
        for k in 0..n {
            lo_ptr[k + 1] += lo_ptr[k];
        }
        let mut lo_slot = vec![0u32; self.ai.len()];
        let mut lo_row = vec![0u32; self.ai.len()];
        fill.clear();
        fill.extend_from_slice(&lo_ptr[..n]);
        for k in 0..n {
            for q in self.ap[k] as usize..self.ap[k + 1] as usize {
                let i = self.ai[q] as usize;
                let at = fill[i] as usize;
                lo_slot[at] = q as u32;
                lo_row[at] = k as u32;
                fill[i] += 1;
            }
        }
        self.sn_slot_ptr.clear();
        self.sn_slot_ptr.push(0);
        self.sn_slot.clear();
        self.sn_dest.clear();
        self.diag_dest.clear();
        self.diag_dest.resize(n, 0);
        for s in 0..ns {
            let sp = self.span(s);
            for (p, &r) in self.srows[sp.rows()].iter().enumerate() {
                relpos[r as usize] = p as u32;
            }
            for j in sp.f..sp.l {
                let col = sp.x0 + (j - sp.f) * sp.nr;
                self.diag_dest[j] = col + (j - sp.f);
                for at in lo_ptr[j] as usize..lo_ptr[j + 1] as usize {
                    self.sn_slot.push(lo_slot[at]);
                    self.sn_dest.push(col + relpos[lo_row[at] as usize] as usize);
                }
            }
            self.sn_slot_ptr.push(self.sn_slot.len() as u32);
        }
        self.lx.clear();
        self.lx.resize(self.sxp[ns], 0.0);
        drop(lo_ptr);
        drop(lo_slot);
        drop(lo_row);
        // The update schedule of the left-looking factorization: once done
        // with a target, a descendant is queued at the head of the list of
        // the next supernode its rows reach; a supernode takes its list in
        // that order. Each update keeps where its rows land in the target.
        let mut head = vec![NONE; ns];
        let mut next = vec![NONE; ns];
        let mut sptr = vec![0u32; ns];
        self.upd_ptr.clear();
        self.upd_ptr.push(0);
        self.upd.clear();
        self.urel.clear();
        for s in 0..ns {
            let l = self.sn_first[s + 1] as usize;
            let nc = l - self.sn_first[s] as usize;
            let (r0, r1) = (self.srp[s] as usize, self.srp[s + 1] as usize);
            for (p, &r) in self.srows[r0..r1].iter().enumerate() {
                relpos[r as usize] = p as u32;
            }
            let mut dsn = head[s];
            while dsn != NONE {
                let d = dsn as usize;
                dsn = next[d];
                let (q0, q1) = (self.srp[d] as usize, self.srp[d + 1] as usize);
                let p1 = sptr[d] as usize;
                let mut p2 = p1;
                while q0 + p2 < q1 && (self.srows[q0 + p2] as usize) < l {
                    p2 += 1;
                }
                self.upd.push(Update { d: d as u32, p1: p1 as u32, c: (p2 - p1) as u32, rel: self.urel.len() as u64 });
                self.urel.extend(self.srows[q0 + p1..q1].iter().map(|&r| relpos[r as usize]));
                sptr[d] = p2 as u32;
                if q0 + p2 < q1 {
                    let t = self.sn_of[self.srows[q0 + p2] as usize] as usize;
                    next[d] = head[t];
                    head[t] = d as u32;
                }
            }
            self.upd_ptr.push(self.upd.len() as u32);
            sptr[s] = nc as u32;
            if r0 + nc < r1 {
                let t = self.sn_of[self.srows[r0 + nc] as usize] as usize;
                next[s] = head[t];
                head[t] = s as u32;
            }
        }
        self.diag.clear();
        self.diag.resize(n, 0.0);
        self.d.clear();
        self.d.resize(n, 0.0);
        self.y.clear();
        self.y.resize(n, 0.0);
        self.pos_id.clear();
        if self.cell_ids.len() == nc {
            self.pos_id.extend(self.pos_cell.iter().map(|&c| self.cell_ids[c as usize]));
        }
        self.stats = FactorStats { n, nnz_l: nnz, flops, supernodes: ns };
        self.analysed = true;
        self.analyses += 1;
    }

    /// Assemble the current values into the analysed pattern and factor.
    /// `w` are the tube weights (0 for dead tubes), `grounded` the pinned
    /// cells. Returns false if a pivot is not positive (the caller falls back
    /// to an iterative solve).
    pub fn factor(&mut self, ends: &[u32], w: &[f64], grounded: &[u8]) -> bool {
        self.assemble(ends, w, grounded);
        self.numeric(false)
    }

    /// `factor`, then z = A⁻¹ r, with the forward substitution fused into the
    /// factorization: each supernode's forward step runs right after its
    /// block is factored, while the block is still in cache (one pass over L
    /// from memory instead of two). Same operations in the same order as
    /// `factor` followed by `solve`, so the same bits. Returns false (z
    /// untouched) if a pivot is not positive.
    pub fn factor_solve(&mut self, ends: &[u32], w: &[f64], grounded: &[u8], r: &[f64], z: &mut [f64]) -> bool {
        self.assemble(ends, w, grounded);
        for k in 0..self.pos_cell.len() {
            self.y[k] = r[self.pos_cell[k] as usize];
        }
        if !self.numeric(true) {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                unsafe { self.finish_solve_avx2(z) };
                return true;
            }
        }
        self.finish_solve(z);
        true
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn finish_solve_avx2(&mut self, z: &mut [f64]) {
        self.finish_solve(z)
    }

    /// Analyse if needed, then load the current values into `ax` and `diag`.
    fn assemble(&mut self, ends: &[u32], w: &[f64], grounded: &[u8]) {
        if !self.load(ends, w, grounded) {
            self.analyze(ends, w, grounded);
            let loaded = self.load(ends, w, grounded);
            debug_assert!(loaded, "a fresh analysis covers the live system");
        }
    }

    /// Load the current values into the analysed pattern, checking on the
    /// way (one pass over the tubes) that the pattern still covers the live
    /// system and is not too wasteful (see `SHRINK`). Returns false when an
    /// analysis is needed (the loaded values are then incomplete).
    fn load(&mut self, ends: &[u32], w: &[f64], grounded: &[u8]) -> bool {
        if !self.analysed || w.len() != self.n_tubes_analysed || grounded.len() != self.cell_pos.len() {
            return false;
        }
        let n = self.pos_cell.len();
        let mut live_cells = 0usize;
        for (c, &g) in grounded.iter().enumerate() {
            if g == 0 {
                if self.cell_pos[c] == NONE {
                    return false;
                }
                live_cells += 1;
            }
        }
        for v in self.ax.iter_mut() {
            *v = 0.0;
        }
        for v in self.diag.iter_mut() {
            *v = 0.0;
        }
        let mut live = 0usize;
        for t in 0..w.len() {
            let wt = w[t];
            if wt == 0.0 {
                continue;
            }
            let (a, b) = (ends[2 * t] as usize, ends[2 * t + 1] as usize);
            if a == b {
                continue;
            }
            let (ga, gb) = (grounded[a] != 0, grounded[b] != 0);
            if !ga {
                self.diag[self.cell_pos[a] as usize] += wt;
            }
            if !gb {
                self.diag[self.cell_pos[b] as usize] += wt;
            }
            if !ga && !gb {
                let q = self.tube_slot[t];
                if q == NONE {
                    return false;
                }
                self.ax[q as usize] -= wt;
                live += 1;
            }
        }
        if (live as f64) < SHRINK * self.live_slots_analysed as f64 || (live_cells as f64) < SHRINK * n as f64 {
            return false;
        }
        for k in 0..n {
            let c = self.pos_cell[k] as usize;
            if grounded[c] != 0 || self.diag[k] == 0.0 {
                // Pinned since the analysis (identity row), or no live tube.
                self.diag[k] = 1.0;
            }
        }
        true
    }

    /// Left-looking supernodal LDLᵀ. Each supernode's block is assembled,
    /// gathers the updates of the descendants that reach it (in the order of
    /// the analysed schedule), then is factored.
    fn numeric(&mut self, fwd: bool) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { self.numeric_avx2(fwd) };
            }
        }
        self.numeric_impl::<false>(fwd)
    }

    /// The same code compiled for 256-bit vectors (eight-row tiles fill eight
    /// of the sixteen ymm registers). Every tile keeps each element's
    /// operations in the scalar order and Rust never contracts into fused
    /// multiply–add, so every lane rounds exactly as the SSE2 and wasm
    /// simd128 builds do.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn numeric_avx2(&mut self, fwd: bool) -> bool {
        self.numeric_impl::<true>(fwd)
    }

    #[inline(always)]
    fn numeric_impl<const AVX: bool>(&mut self, fwd: bool) -> bool {
        let ns = self.sn_first.len() - 1;
        for s in 0..ns {
            let sp = self.span(s);
            let (f, l, nr) = (sp.f, sp.l, sp.nr);
            // Assemble: zero the block, then the diagonal and the matrix slots
            // (through local slices: the loops need not reload the vectors).
            let lx = &mut self.lx;
            lx[sp.block()].fill(0.0);
            for (&at, &v) in self.diag_dest[f..l].iter().zip(&self.diag[f..l]) {
                lx[at] = v;
            }
            let (q0, q1) = (self.sn_slot_ptr[s] as usize, self.sn_slot_ptr[s + 1] as usize);
            let ax = &self.ax;
            for (&at, &q) in self.sn_dest[q0..q1].iter().zip(&self.sn_slot[q0..q1]) {
                lx[at] = ax[q as usize];
            }
            let (lo, hi) = self.lx.split_at_mut(sp.x0);
            let tgt = &mut hi[..sp.block().len()];
            for up in &self.upd[self.upd_ptr[s] as usize..self.upd_ptr[s + 1] as usize] {
                let ds = Span::of(&self.sn_first, &self.srp, &self.sxp, up.d as usize);
                let (p1, c, nrd) = (up.p1 as usize, up.c as usize, ds.nr);
                let src = Descendant { l: &lo[ds.block()], d: &self.d[ds.f..ds.l], nrd, p1, c };
                let rel = &self.urel[up.rel as usize..up.rel as usize + nrd - p1];
                #[cfg(test)]
                let small = ds.nc() <= SMALL && !self.tiles_only;
                #[cfg(not(test))]
                let small = ds.nc() <= SMALL;
                if small {
                    match ds.nc() {
                        1 => small_update::<1>(&src, rel, tgt, nr),
                        2 => small_update::<2>(&src, rel, tgt, nr),
                        3 => small_update::<3>(&src, rel, tgt, nr),
                        4 => small_update::<4>(&src, rel, tgt, nr),
                        5 => small_update::<5>(&src, rel, tgt, nr),
                        6 => small_update::<6>(&src, rel, tgt, nr),
                        _ => small_update::<7>(&src, rel, tgt, nr),
                    }
                } else {
                    tile_update::<AVX>(&src, rel, tgt, nr, &mut self.tbuf);
                }
            }
            if !self.factor_block::<AVX>(s) {
                return false;
            }
            if fwd {
                if AVX {
                    self.forward::<8>(s);
                } else {
                    self.forward::<4>(s);
                }
            }
        }
        true
    }

    /// Dense LDLᵀ of supernode s's block (rows × columns, column-major),
    /// left-looking by panels of four columns. A panel's diagonal rows first
    /// receive the updates of all earlier columns (a register tile), then
    /// its w × w triangle is factored column by column; every row below then
    /// goes through one register tile that subtracts the earlier columns'
    /// terms, then the panel's own, and scales by the pivots. Every element
    /// is updated by columns in ascending order and then scaled, as in the
    /// plain column-by-column loop.
    #[inline(always)]
    fn factor_block<const AVX: bool>(&mut self, s: usize) -> bool {
        let sp = self.span(s);
        let (f, l, nc, nr) = (sp.f, sp.l, sp.nc(), sp.nr);
        let block = &mut self.lx[sp.block()];
        let dd = &mut self.d[f..l];
        let diag = &self.diag[f..l];
        let tbuf = &mut self.tbuf;
        let mut k0 = 0;
        while k0 < nc {
            let w = (nc - k0).min(4);
            let e = k0 + w;
            if k0 > 0 {
                // Lanes q >= w need no clearing: they only feed tile
                // columns that are never stored.
                if tbuf.len() < k0 * 4 {
                    tbuf.resize(k0 * 4, 0.0);
                }
                for j in 0..k0 {
                    for q in 0..w {
                        tbuf[j * 4 + q] = block[j * nr + k0 + q] * dd[j];
                    }
                }
                let mut i = k0;
                while i < e {
                    i += tiles::panel(AVX, block, i, e, nr, k0, w, tbuf, None);
                }
            }
            let mut fin = tiles::Finish::default();
            for k in k0..e {
                let (left, right) = block.split_at_mut(k * nr);
                let colk = &mut right[k..e];
                for j in k0..k {
                    let cj = &left[j * nr..(j + 1) * nr];
                    let t = cj[k] * dd[j];
                    fin.t[j - k0][k - k0] = t;
                    for (x, &v) in colk.iter_mut().zip(&cj[k..e]) {
                        *x -= v * t;
                    }
                }
                let dk = colk[0];
                if !(dk > 1e-14 * diag[k]) || !dk.is_finite() {
                    return false;
                }
                dd[k] = dk;
                let inv = 1.0 / dk;
                fin.inv[k - k0] = inv;
                for v in colk[1..].iter_mut() {
                    *v *= inv;
                }
            }
            if nc == 1 {
                // A single column: just the scaling (the same operations).
                for v in block[1..].iter_mut() {
                    *v *= fin.inv[0];
                }
                break;
            }
            let mut i = e;
            while i < nr {
                i += tiles::panel(AVX, block, i, nr, nr, k0, w, tbuf, Some(&fin));
            }
            k0 = e;
        }
        true
    }

    /// z = A⁻¹ r on the system cells (grounded and unknown cells get 0).
    pub fn solve(&mut self, r: &[f64], z: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { self.solve_avx2(r, z) };
            }
        }
        self.solve_impl::<4>(r, z)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn solve_avx2(&mut self, r: &[f64], z: &mut [f64]) {
        self.solve_impl::<8>(r, z)
    }

    /// Supernodal triangular solves. Forward: a supernode's own triangle
    /// column by column, then the rows below it in R-row tiles (each row
    /// subtracts the columns' terms in ascending order, skipping zero
    /// values, as a column-by-column scatter would). Backward: each column
    /// first subtracts the rows below the supernode (a dot product in four
    /// interleaved partial sums, combined in a fixed order), then the own
    /// triangle, last column first.
    #[inline(always)]
    fn solve_impl<const R: usize>(&mut self, r: &[f64], z: &mut [f64]) {
        for k in 0..self.pos_cell.len() {
            self.y[k] = r[self.pos_cell[k] as usize];
        }
        for s in 0..self.sn_first.len() - 1 {
            self.forward::<R>(s);
        }
        self.finish_solve(z);
    }

    /// Forward substitution through supernode s: its own triangle column by
    /// column, then the rows below it in R-row tiles (each row subtracts the
    /// columns' terms in ascending order, skipping zero values, as a
    /// column-by-column scatter would; R only groups rows, so it does not
    /// change the bits).
    #[inline(always)]
    fn forward<const R: usize>(&mut self, s: usize) {
        let sp = self.span(s);
        let (f, l, nc, nr) = (sp.f, sp.l, sp.nc(), sp.nr);
        let y = &mut self.y;
        let yb = &mut self.yb;
        let rows = &self.srows[sp.rows()];
        let blk = &self.lx[sp.block()];
        if nc == 1 {
            // One column (most supernodes): each row below subtracts its
            // single term in place.
            let yj = y[f];
            if yj != 0.0 {
                for (&r, &v) in rows[1..].iter().zip(&blk[1..]) {
                    y[r as usize] -= v * yj;
                }
            }
            return;
        }
        for j in 0..nc {
            let yj = y[f + j];
            if yj != 0.0 {
                let col = &blk[j * nr..j * nr + nc];
                for (x, &v) in y[f + j + 1..l].iter_mut().zip(&col[j + 1..]) {
                    *x -= v * yj;
                }
            }
        }
        let own = &y[f..l];
        yb.clear();
        yb.extend_from_slice(own);
        let mut i = nc;
        while i + R <= nr {
            forward_rows::<R>(y, yb, blk, rows, nr, i);
            i += R;
        }
        // The rows left in narrower tiles, then one by one.
        if R > 4 && i + 4 <= nr {
            forward_rows::<4>(y, yb, blk, rows, nr, i);
            i += 4;
        }
        if i + 2 <= nr {
            forward_rows::<2>(y, yb, blk, rows, nr, i);
            i += 2;
        }
        if i < nr {
            forward_rows::<1>(y, yb, blk, rows, nr, i);
        }
    }

    /// After the forward substitution: the diagonal scaling, the backward
    /// substitution (each column first subtracts the rows below the
    /// supernode — a dot product in four interleaved partial sums, combined
    /// in a fixed order — then the own triangle, last column first), and the
    /// scatter to z.
    #[inline(always)]
    fn finish_solve(&mut self, z: &mut [f64]) {
        let n = self.pos_cell.len();
        let ns = self.sn_first.len() - 1;
        let y = &mut self.y;
        let yb = &mut self.yb;
        for j in 0..n {
            y[j] /= self.d[j];
        }
        for s in (0..ns).rev() {
            let sp = Span::of(&self.sn_first, &self.srp, &self.sxp, s);
            let (f, l, nc, nr) = (sp.f, sp.l, sp.nc(), sp.nr);
            let rows = &self.srows[sp.rows()];
            let blk = &self.lx[sp.block()];
            if nc == 1 {
                // One column (most supernodes): the same dot product, its
                // values read in place, and no own triangle.
                let (below, at) = (&blk[1..], &rows[1..]);
                let mut p = [0.0f64; 4];
                let full = below.len() / 4 * 4;
                for (a, r) in below[..full].chunks_exact(4).zip(at.chunks_exact(4)) {
                    for q in 0..4 {
                        p[q] += a[q] * y[r[q] as usize];
                    }
                }
                for (q, (a, &r)) in below[full..].iter().zip(&at[full..]).enumerate() {
                    p[q] += a * y[r as usize];
                }
                y[f] -= (p[0] + p[1]) + (p[2] + p[3]);
                continue;
            }
            yb.clear();
            yb.extend(rows[nc..].iter().map(|&r| y[r as usize]));
            for j in 0..nc {
                let below = &blk[j * nr + nc..(j + 1) * nr];
                let mut p = [0.0f64; 4];
                let mut chunks = below.chunks_exact(4);
                let mut ys = yb.chunks_exact(4);
                for (a, b) in (&mut chunks).zip(&mut ys) {
                    for q in 0..4 {
                        p[q] += a[q] * b[q];
                    }
                }
                for (q, (a, b)) in chunks.remainder().iter().zip(ys.remainder()).enumerate() {
                    p[q] += a * b;
                }
                y[f + j] -= (p[0] + p[1]) + (p[2] + p[3]);
            }
            for j in (0..nc).rev() {
                let col = &blk[j * nr..j * nr + nc];
                let mut acc = y[f + j];
                for (&v, &x) in col[j + 1..].iter().zip(&y[f + j + 1..l]) {
                    acc -= v * x;
                }
                y[f + j] = acc;
            }
        }
        for v in z.iter_mut() {
            *v = 0.0;
        }
        for k in 0..n {
            z[self.pos_cell[k] as usize] = y[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// s×s grid with diagonals, a parallel tube, weights over 8 decades.
    fn grid(s: usize) -> (Vec<u32>, Vec<f64>) {
        let mut ends = Vec::new();
        for y in 0..s {
            for x in 0..s {
                let v = (y * s + x) as u32;
                if x + 1 < s {
                    ends.extend([v, v + 1]);
                }
                if y + 1 < s {
                    ends.extend([v, v + s as u32]);
                }
                if x + 1 < s && y + 1 < s && (x * 7 + y) % 5 == 0 {
                    ends.extend([v + s as u32 + 1, v]);
                }
            }
        }
        ends.extend([0u32, 1]);
        let nt = ends.len() / 2;
        let w = (0..nt).map(|t| libm::pow(10.0, ((t * 7919) % 9) as f64 - 4.0)).collect();
        (ends, w)
    }

    /// max |b − A x| over unpinned cells, A the grounded Laplacian.
    fn residual(ends: &[u32], w: &[f64], grounded: &[u8], b: &[f64], x: &[f64]) -> f64 {
        let mut ax = vec![0.0; x.len()];
        for t in 0..w.len() {
            let (a, c) = (ends[2 * t] as usize, ends[2 * t + 1] as usize);
            let d = w[t] * (x[a] - x[c]);
            ax[a] += d;
            ax[c] -= d;
        }
        let r = (0..x.len()).filter(|&i| grounded[i] == 0).map(|i| (b[i] - ax[i]).abs()).fold(0.0, f64::max);
        // Relative to the size of the terms (backward error of the solve).
        let wmax = w.iter().fold(0.0, |m: f64, v| m.max(*v));
        let xmax = x.iter().fold(0.0, |m: f64, v| m.max(v.abs()));
        r / (wmax * xmax)
    }

    fn rhs(n: usize, grounded: &[u8]) -> Vec<f64> {
        (0..n).map(|i| if grounded[i] != 0 { 0.0 } else { ((i * 37) % 11) as f64 - 5.0 }).collect()
    }

    #[test]
    fn direct_solve_is_exact_and_uses_supernodes() {
        let s = 30;
        let (ends, w) = grid(s);
        let n = s * s;
        let mut grounded = vec![0u8; n];
        grounded[n / 2] = 1;
        let b = rhs(n, &grounded);
        let mut ch = Cholesky::default();
        assert!(ch.factor(&ends, &w, &grounded));
        let mut x = vec![0.0; n];
        ch.solve(&b, &mut x);
        let res = residual(&ends, &w, &grounded, &b, &x);
        assert!(res < 1e-13, "{res}");
        assert_eq!(x[n / 2], 0.0);
        assert_eq!(ch.stats.n, n - 1);
        assert!(ch.stats.supernodes < ch.stats.n / 2, "{:?}", ch.stats);
        // Fill stays far below a dense factor.
        assert!(ch.stats.nnz_l < 20 * ends.len(), "{:?}", ch.stats);
        assert_eq!(ch.analyses, 1);
    }

    #[test]
    fn fused_factor_solve_gives_the_same_bits_as_factor_then_solve() {
        let s = 40;
        let (ends, w) = grid(s);
        let n = s * s;
        let mut grounded = vec![0u8; n];
        grounded[7] = 1;
        let b = rhs(n, &grounded);
        let mut a = Cholesky::default();
        assert!(a.factor(&ends, &w, &grounded));
        let mut xa = vec![1.0; n];
        a.solve(&b, &mut xa);
        let mut f = Cholesky::default();
        let mut xf = vec![1.0; n];
        assert!(f.factor_solve(&ends, &w, &grounded, &b, &mut xf));
        assert_eq!(xa.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), xf.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert!(residual(&ends, &w, &grounded, &b, &xf) < 1e-12);
        // A second solve with the factor of the fused call agrees too.
        let b2: Vec<f64> = b.iter().enumerate().map(|(i, v)| if grounded[i] != 0 { 0.0 } else { v + (i % 7) as f64 }).collect();
        let mut ya = vec![0.0; n];
        let mut yf = vec![0.0; n];
        a.solve(&b2, &mut ya);
        f.solve(&b2, &mut yf);
        assert_eq!(ya, yf);
    }

    /// Factor and solve with the given options (tiles only; the portable
    /// kernels even where AVX2 is available); returns d and x.
    fn factor_with(ends: &[u32], w: &[f64], grounded: &[u8], b: &[f64], tiles_only: bool, portable: bool) -> (Vec<u64>, Vec<u64>) {
        let mut ch = Cholesky { tiles_only, ..Default::default() };
        ch.assemble(ends, w, grounded);
        assert!(if portable { ch.numeric_impl::<false>(false) } else { ch.numeric(false) });
        let mut x = vec![0.0; b.len()];
        ch.solve_impl::<4>(b, &mut x);
        assert!(residual(ends, w, grounded, b, &x) < 1e-12);
        (ch.d.iter().map(|v| v.to_bits()).collect(), x.iter().map(|v| v.to_bits()).collect())
    }

    #[test]
    fn small_updates_vector_widths_and_tail_tiles_give_the_same_bits() {
        // Sizes whose supernodes and descendants leave every tail length
        // (rows mod 8) and both update paths in use.
        for s in [9, 23, 37] {
            let (ends, w) = grid(s);
            let n = s * s;
            let mut grounded = vec![0u8; n];
            grounded[s + 2] = 1;
            let b = rhs(n, &grounded);
            let reference = factor_with(&ends, &w, &grounded, &b, true, true);
            assert_eq!(factor_with(&ends, &w, &grounded, &b, false, true), reference, "small updates, side {s}");
            assert_eq!(factor_with(&ends, &w, &grounded, &b, false, false), reference, "native kernels, side {s}");
            assert_eq!(factor_with(&ends, &w, &grounded, &b, true, false), reference, "native tiles, side {s}");
        }
    }

    /// A tree with a few extra tubes (a sparse graph) on `n` cells: tube
    /// ends by cell number, cell i joined to an earlier one.
    fn sparse_graph(n: usize) -> Vec<(usize, usize)> {
        let mut edges: Vec<(usize, usize)> = (1..n).map(|i| (i, (i * 2_654_435_761) % i)).collect();
        edges.extend((10..n).step_by(10).map(|i| (i, (i * 31 + 7) % (i - 1))));
        edges
    }

    #[test]
    fn a_pruned_sparse_system_keeps_its_order_across_renumbering() {
        let n = 600;
        let edges = sparse_graph(n);
        let flat = |keep: usize, new_of: &dyn Fn(usize) -> u32| -> Vec<u32> {
            edges.iter().filter(|&&(a, b)| a < keep && b < keep).flat_map(|&(a, b)| [new_of(a), new_of(b)]).collect()
        };
        let ends = flat(n, &|c| c as u32);
        let w: Vec<f64> = (0..ends.len() / 2).map(|t| 1.0 + (t % 7) as f64).collect();
        let mut grounded = vec![0u8; n];
        grounded[0] = 1;
        let mut ch = Cholesky::default();
        ch.set_cell_ids(&(0..n as u32).collect::<Vec<_>>());
        assert!(ch.factor(&ends, &w, &grounded));
        let (old_order, old_nnz) = (ch.pos_id.clone(), ch.stats.nnz_l);
        assert_eq!(old_order.len(), n - 1);
        // Keep the cells below 350 (connected: each joins an earlier one),
        // renumbered in reverse; the network ids say which is which.
        let keep = 350;
        let new_of = |c: usize| (keep - 1 - c) as u32;
        let ends2 = flat(keep, &new_of);
        let w2: Vec<f64> = (0..ends2.len() / 2).map(|t| 2.0 + (t % 5) as f64).collect();
        let mut g2 = vec![0u8; keep];
        g2[new_of(0) as usize] = 1;
        ch.set_cell_ids(&(0..keep).map(|k| (keep - 1 - k) as u32).collect::<Vec<_>>());
        let b = rhs(keep, &g2);
        let mut x = vec![0.0; keep];
        assert!(ch.factor_solve(&ends2, &w2, &g2, &b, &mut x));
        assert_eq!((ch.analyses, ch.fresh_orders), (2, 1));
        // The new order is the old one restricted to the cells left.
        let restricted: Vec<u32> = old_order.iter().copied().filter(|&id| (id as usize) < keep).collect();
        assert_eq!(ch.pos_id, restricted);
        assert!(ch.stats.nnz_l <= old_nnz);
        assert!(residual(&ends2, &w2, &g2, &b, &x) < 1e-13);
        // A tube between cells the analysed graph never joined (5 and 300):
        // ordered afresh, and exact.
        assert!(!edges.contains(&(300, 5)) && !edges.contains(&(5, 300)));
        let mut ends4 = ends2.clone();
        ends4.extend([new_of(5), new_of(300)]);
        let mut w4 = w2.clone();
        w4.push(1.0);
        let mut x4 = vec![0.0; keep];
        assert!(ch.factor_solve(&ends4, &w4, &g2, &b, &mut x4));
        assert_eq!((ch.analyses, ch.fresh_orders), (3, 2), "a new tube needs a new order");
        assert!(residual(&ends4, &w4, &g2, &b, &x4) < 1e-13);
        // A cell the last analysis did not have: ordered afresh (and still exact).
        let mut ends3 = ends2.clone();
        ends3.extend([0, keep as u32]);
        let mut w3 = w2.clone();
        w3.push(1.0);
        let mut g3 = g2.clone();
        g3.push(0);
        ch.set_cell_ids(&(0..=keep).map(|k| if k == keep { 9_999 } else { (keep - 1 - k) as u32 }).collect::<Vec<_>>());
        let b3 = rhs(keep + 1, &g3);
        let mut x3 = vec![0.0; keep + 1];
        assert!(ch.factor_solve(&ends3, &w3, &g3, &b3, &mut x3));
        assert_eq!((ch.analyses, ch.fresh_orders), (4, 3));
        assert!(ch.pos_id.contains(&9_999));
        assert!(residual(&ends3, &w3, &g3, &b3, &x3) < 1e-13);
    }

    #[test]
    fn analysis_reused_under_pruning_and_redone_on_growth_or_shrinkage() {
        let s = 20;
        let (ends, mut w) = grid(s);
        let n = s * s;
        let mut grounded = vec![0u8; n];
        grounded[0] = 1;
        let mut ch = Cholesky::default();
        assert!(ch.factor(&ends, &w, &grounded));
        // Prune the diagonals (the grid stays connected) and pin a cell cut
        // off from the rest: same analysis.
        for t in 0..w.len() {
            if ends[2 * t].abs_diff(ends[2 * t + 1]) == s as u32 + 1 {
                w[t] = 0.0;
            }
        }
        let corner = n - 1;
        for t in 0..w.len() {
            if ends[2 * t] as usize == corner || ends[2 * t + 1] as usize == corner {
                w[t] = 0.0;
            }
        }
        grounded[corner] = 1;
        let b = rhs(n, &grounded);
        assert!(ch.factor(&ends, &w, &grounded));
        assert_eq!(ch.analyses, 1);
        let mut x = vec![0.0; n];
        ch.solve(&b, &mut x);
        assert!(residual(&ends, &w, &grounded, &b, &x) < 1e-13);
        // A fresh analysis of the same pruned system gives the same solution.
        let mut fresh = Cholesky::default();
        assert!(fresh.factor(&ends, &w, &grounded));
        let mut x2 = vec![0.0; n];
        fresh.solve(&b, &mut x2);
        for i in 0..n {
            assert!((x[i] - x2[i]).abs() <= 1e-9 * (1.0 + x2[i].abs()));
        }
        assert!(fresh.stats.nnz_l <= ch.stats.nnz_l);
        // Growth: a new tube (and cell) needs a new analysis.
        let mut ends2 = ends.clone();
        ends2.extend([5u32, n as u32]);
        let mut w2 = w.clone();
        w2.push(1.0);
        let mut g2 = grounded.clone();
        g2.push(0);
        assert!(ch.factor(&ends2, &w2, &g2));
        assert_eq!(ch.analyses, 2);
        // Heavy pruning down to a spanning comb (vertical tubes, row 0, the
        // new tube): the old pattern is too wasteful, re-analyse.
        for t in 0..w2.len() - 1 {
            let (a, c) = (ends2[2 * t].min(ends2[2 * t + 1]), ends2[2 * t].max(ends2[2 * t + 1]));
            if !(c - a == s as u32 || (c - a == 1 && (a as usize) < s)) {
                w2[t] = 0.0;
            }
        }
        for t in 0..w2.len() - 1 {
            if ends2[2 * t] as usize == corner || ends2[2 * t + 1] as usize == corner {
                w2[t] = 0.0;
            }
        }
        assert!(ch.factor(&ends2, &w2, &g2));
        assert_eq!(ch.analyses, 3);
        let b2 = rhs(n + 1, &g2);
        let mut x3 = vec![0.0; n + 1];
        ch.solve(&b2, &mut x3);
        assert!(residual(&ends2, &w2, &g2, &b2, &x3) < 1e-13);
    }
}
