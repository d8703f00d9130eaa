//! Fill-reducing ordering for the sparse Cholesky factorization: nested
//! dissection with level-structure separators (George & Liu) for
//! lattice-like graphs, approximate minimum degree (the `amd` crate) for
//! sparse ones (`fill_reducing` chooses).
//!
//! A piece of the graph is split by a breadth-first level structure rooted at
//! a pseudo-peripheral vertex: one level (chosen among the balanced ones as the
//! smallest) is the separator, the levels before and after it are the two
//! halves. Only the separator vertices that touch the far side are kept in the
//! separator (the others join the near half). Halves are ordered first,
//! recursively, and the separator last, so that eliminating a half never fills
//! across the separator. Disconnected pieces are split into their components
//! first. Pieces of at most `LEAF` vertices are ordered by approximate minimum
//! degree on their own subgraph.
//!
//! Work is O(E log V) with an explicit work stack (no recursion, so deep
//! dissections cannot overflow the wasm stack). Everything is integer and
//! array-ordered: the ordering is identical on every platform.

/// Pieces this small are not dissected further.
const LEAF: usize = 64;
const DONE: u32 = u32::MAX;
const UNSEEN: u32 = u32::MAX;

/// Scratch state of one ordering run.
struct Dissector<'a> {
    xadj: &'a [u32],
    adj: &'a [u32],
    /// Vertices, grouped by piece: piece `[lo, hi)` of `order` is labelled `lo`.
    order: Vec<u32>,
    label: Vec<u32>,
    level: Vec<u32>,
    queue: Vec<u32>,
    tmp: Vec<u32>,
    /// Vertex -> index inside the leaf being ordered.
    loc: Vec<u32>,
}

impl Dissector<'_> {
    /// Breadth-first search from `root` inside piece `lab`; leaves the visited
    /// vertices in `queue` (in visiting order) with their `level`, and returns
    /// the number of levels. The caller resets `level` of the queued vertices.
    fn bfs(&mut self, root: u32, lab: u32) -> u32 {
        self.queue.clear();
        self.queue.push(root);
        self.level[root as usize] = 0;
        let mut head = 0;
        let mut depth = 0;
        while head < self.queue.len() {
            let v = self.queue[head] as usize;
            head += 1;
            let lv = self.level[v];
            depth = lv + 1;
            for &u in &self.adj[self.xadj[v] as usize..self.xadj[v + 1] as usize] {
                let ui = u as usize;
                if self.label[ui] == lab && self.level[ui] == UNSEEN {
                    self.level[ui] = lv + 1;
                    self.queue.push(u);
                }
            }
        }
        depth
    }

    fn reset_levels(&mut self) {
        for &v in &self.queue {
            self.level[v as usize] = UNSEEN;
        }
    }

    /// Reorder `order[lo..hi]` so that the vertices with `class(v) == k` come
    /// in blocks k = 0, 1, 2 (stable), and return the block sizes.
    fn partition(&mut self, lo: usize, hi: usize, class: impl Fn(&Self, u32) -> usize) -> [usize; 3] {
        let mut sizes = [0usize; 3];
        self.tmp.clear();
        for k in 0..3 {
            for q in lo..hi {
                let v = self.order[q];
                if class(self, v) == k {
                    self.tmp.push(v);
                    sizes[k] += 1;
                }
            }
        }
        self.order[lo..hi].copy_from_slice(&self.tmp);
        sizes
    }

    fn relabel(&mut self, lo: usize, hi: usize, lab: u32) {
        for q in lo..hi {
            self.label[self.order[q] as usize] = lab;
        }
    }

    /// Order the connected piece `[lo, hi)` (label `lab`) by approximate
    /// minimum degree on its own induced subgraph, and mark it done.
    fn order_leaf(&mut self, lo: usize, hi: usize, lab: u32) {
        let size = hi - lo;
        for (k, q) in (lo..hi).enumerate() {
            self.loc[self.order[q] as usize] = k as u32;
        }
        let mut xadj = Vec::with_capacity(size + 1);
        let mut adj = Vec::new();
        xadj.push(0u32);
        for q in lo..hi {
            let v = self.order[q] as usize;
            for &u in &self.adj[self.xadj[v] as usize..self.xadj[v + 1] as usize] {
                if self.label[u as usize] == lab {
                    adj.push(self.loc[u as usize]);
                }
            }
            xadj.push(adj.len() as u32);
        }
        let perm = approximate_minimum_degree(size, &xadj, &adj);
        self.tmp.clear();
        self.tmp.extend(perm.iter().map(|&k| self.order[lo + k as usize]));
        self.order[lo..hi].copy_from_slice(&self.tmp);
        for q in lo..hi {
            self.label[self.order[q] as usize] = DONE;
        }
    }

    /// Split piece `[lo, hi)`; returns the sub-pieces to process.
    fn split(&mut self, lo: usize, hi: usize, out: &mut Vec<(usize, usize)>) {
        let lab = lo as u32;
        let size = hi - lo;
        let start = self.order[lo];
        self.bfs(start, lab);
        if self.queue.len() < size {
            // Disconnected: this component, then the rest.
            for &v in &self.queue {
                self.level[v as usize] = 0;
            }
            let [c, r, _] = self.partition(lo, hi, |s, v| if s.level[v as usize] == 0 { 0 } else { 1 });
            for q in lo..lo + c {
                self.level[self.order[q] as usize] = UNSEEN;
            }
            self.relabel(lo + c, lo + c + r, (lo + c) as u32);
            out.push((lo, lo + c));
            out.push((lo + c, hi));
            return;
        }
        if size <= LEAF {
            // Minimum-degree order inside a small piece.
            self.reset_levels();
            self.order_leaf(lo, hi, lab);
            return;
        }
        // Pseudo-peripheral root: restart from the last vertex reached while
        // the eccentricity grows (at most a few sweeps).
        let mut depth = {
            let last = self.queue[self.queue.len() - 1];
            self.reset_levels();
            self.bfs(last, lab)
        };
        for _ in 0..4 {
            let last = *self.queue.last().expect("non-empty piece");
            self.reset_levels();
            let d2 = self.bfs(last, lab);
            if d2 <= depth {
                break;
            }
            depth = d2;
        }
        let depth = depth as usize;
        if depth < 3 {
            // Too dense to dissect usefully: eliminate in breadth-first order.
            let q = std::mem::take(&mut self.queue);
            self.order[lo..hi].copy_from_slice(&q);
            self.queue = q;
            self.reset_levels();
            for q in lo..hi {
                self.label[self.order[q] as usize] = DONE;
            }
            return;
        }
        // Level sizes, then the separator level: the smallest level among
        // those leaving at least a quarter of the piece on each side, else the
        // median level.
        let mut count = vec![0usize; depth];
        for &v in &self.queue {
            count[self.level[v as usize] as usize] += 1;
        }
        let mut before = 0usize;
        let mut best: Option<(usize, usize)> = None;
        let mut median = 1usize;
        for (m, &c) in count.iter().enumerate() {
            if m >= 1 && m + 1 < depth {
                if 2 * before < size {
                    median = m;
                }
                if 4 * before >= size && 4 * (before + c) <= 3 * size && best.is_none_or(|(_, bc)| c < bc) {
                    best = Some((m, c));
                }
            }
            before += c;
        }
        let m = best.map_or(median, |(m, _)| m) as u32;
        // Classes: 0 = near half (levels < m, and level-m vertices without a
        // neighbour beyond), 1 = far half (levels > m), 2 = separator.
        self.tmp.clear();
        for q in lo..hi {
            let v = self.order[q] as usize;
            let lv = self.level[v];
            let class = if lv < m {
                0
            } else if lv > m {
                1
            } else {
                let beyond = self.adj[self.xadj[v] as usize..self.xadj[v + 1] as usize]
                    .iter()
                    .any(|&u| self.label[u as usize] == lab && self.level[u as usize] == m + 1);
                if beyond { 2 } else { 0 }
            };
            self.tmp.push(class);
        }
        // Stash classes in `level` (all vertices of the piece were reached).
        for (k, q) in (lo..hi).enumerate() {
            let v = self.order[q] as usize;
            self.level[v] = self.tmp[k];
        }
        let [a, b, _s] = self.partition(lo, hi, |s, v| s.level[v as usize] as usize);
        for q in lo..hi {
            self.level[self.order[q] as usize] = UNSEEN;
        }
        self.relabel(lo + a, lo + a + b, (lo + a) as u32);
        self.relabel(lo + a + b, hi, DONE);
        out.push((lo, lo + a));
        out.push((lo + a, lo + a + b));
    }
}

/// Nested-dissection ordering of the symmetric graph given in CSR form
/// (`xadj.len() == n + 1`; `adj` must not contain self-loops). Returns `perm`
/// with `perm[new] = old`.
pub fn nested_dissection(n: usize, xadj: &[u32], adj: &[u32]) -> Vec<u32> {
    let mut d = Dissector {
        loc: vec![0; n],
        xadj,
        adj,
        order: (0..n as u32).collect(),
        label: vec![0; n],
        level: vec![UNSEEN; n],
        queue: Vec::new(),
        tmp: Vec::new(),
    };
    let mut stack = Vec::new();
    if n > 0 {
        stack.push((0usize, n));
    }
    let mut out = Vec::new();
    while let Some((lo, hi)) = stack.pop() {
        if hi <= lo {
            continue;
        }
        out.clear();
        d.split(lo, hi, &mut out);
        stack.extend(out.iter().copied());
    }
    d.order
}

/// Approximate-minimum-degree ordering (Amestoy, Davis & Duff; the `amd`
/// crate, a port of SuiteSparse AMD) of the same CSR graph. Returns `perm`
/// with `perm[new] = old`. Integer-only: identical on every platform.
pub fn approximate_minimum_degree(n: usize, xadj: &[u32], adj: &[u32]) -> Vec<u32> {
    if n == 0 {
        return Vec::new();
    }
    // The crate's input is a sorted, duplicate-free pattern with the
    // diagonal (AMD ignores the diagonal, but the crate's debug checks count
    // it; parallel tubes would be duplicates).
    let mut ap: Vec<i32> = Vec::with_capacity(n + 1);
    let mut ai: Vec<i32> = Vec::with_capacity(adj.len() + n);
    ap.push(0);
    for v in 0..n {
        let start = ai.len();
        ai.push(v as i32);
        ai.extend(adj[xadj[v] as usize..xadj[v + 1] as usize].iter().map(|&u| u as i32));
        ai[start..].sort_unstable();
        let mut keep = start;
        for q in start..ai.len() {
            if q == start || ai[q] != ai[keep - 1] {
                ai[keep] = ai[q];
                keep += 1;
            }
        }
        ai.truncate(keep);
        ap.push(ai.len() as i32);
    }
    let control = amd::Control::default();
    match amd::order::<i32>(n as i32, &ap, &ai, &control) {
        Ok((p, _, _)) => p.into_iter().map(|v| v as u32).collect(),
        // Only an invalid graph fails (indices out of range): the caller
        // built it, so fall back to the identity order rather than panic.
        Err(_) => (0..n as u32).collect(),
    }
}

/// The fill-reducing ordering of the factorization, chosen by how
/// lattice-like the graph is (average degree; parallel tubes count, only a
/// rough measure is needed): nested dissection for wide lattices (early in a
/// run), approximate minimum degree for sparse, tree-like networks (after
/// pruning: on the benchmark lattices AMD needs half to a quarter of the
/// multiply–adds there), and otherwise (in between, or small) both,
/// keeping the one with fewer multiply–adds (ties: nested dissection). Returns `perm` with
/// `perm[new] = old`.
pub fn fill_reducing(n: usize, xadj: &[u32], adj: &[u32]) -> Vec<u32> {
    let edges = adj.len() / 2;
    if 10 * edges >= LATTICE_DEGREE_X5 * n && n >= LATTICE_MIN_CELLS {
        return nested_dissection(n, xadj, adj);
    }
    let amd = approximate_minimum_degree(n, xadj, adj);
    if is_sparse(n, xadj) {
        return amd;
    }
    let nd = nested_dissection(n, xadj, adj);
    let (_, flops_amd) = fill_cost(n, xadj, adj, &amd);
    let (_, flops_nd) = fill_cost(n, xadj, adj, &nd);
    if flops_amd < flops_nd { amd } else { nd }
}

/// Is the graph (CSR, both directions stored) sparse enough that
/// `fill_reducing` orders it by minimum degree alone?
pub fn is_sparse(n: usize, xadj: &[u32]) -> bool {
    10 * (xadj[n] as usize / 2) < SPARSE_DEGREE_X5 * n
}

/// Average degree (times 5) from which a graph counts as a lattice (nested
/// dissection only): 3.6. A square lattice has almost 4.
const LATTICE_DEGREE_X5: usize = 18;
/// Smaller lattices try both orderings (on the benchmark's 23 × 23 lattice
/// AMD needs 10 % fewer multiply–adds; from 71 × 71 on, dissection wins).
const LATTICE_MIN_CELLS: usize = 4096;
/// Average degree (times 5) below which a graph counts as sparse (AMD
/// only): 3.
const SPARSE_DEGREE_X5: usize = 15;

/// Off-diagonal entries of L and multiply–add pairs of one factorization of
/// the graph's Laplacian eliminated in the order `perm` (`perm[new] = old`):
/// elimination tree and column counts by Liu's row-subtree walk, O(nnz(L)).
pub fn fill_cost(n: usize, xadj: &[u32], adj: &[u32], perm: &[u32]) -> (usize, f64) {
    let mut ipos = vec![0u32; n];
    for (k, &old) in perm.iter().enumerate() {
        ipos[old as usize] = k as u32;
    }
    let mut parent = vec![UNSEEN; n];
    let mut flag = vec![UNSEEN; n];
    let mut cnt = vec![0u32; n];
    for (k, &v) in perm.iter().enumerate() {
        let v = v as usize;
        flag[k] = k as u32;
        for &u in &adj[xadj[v] as usize..xadj[v + 1] as usize] {
            let mut i = ipos[u as usize] as usize;
            if i >= k {
                continue;
            }
            while flag[i] != k as u32 {
                if parent[i] == UNSEEN {
                    parent[i] = k as u32;
                }
                cnt[i] += 1;
                flag[i] = k as u32;
                i = parent[i] as usize;
            }
        }
    }
    let mut nnz = 0usize;
    let mut flops = 0.0f64;
    for &c in &cnt {
        nnz += c as usize;
        let c = c as f64;
        flops += c * (c + 1.0) * 0.5;
    }
    (nnz, flops)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(s: usize) -> (Vec<u32>, Vec<u32>) {
        let mut edges = Vec::new();
        for y in 0..s {
            for x in 0..s {
                let v = (y * s + x) as u32;
                if x + 1 < s {
                    edges.push((v, v + 1));
                }
                if y + 1 < s {
                    edges.push((v, v + s as u32));
                }
            }
        }
        csr(s * s, &edges)
    }

    #[test]
    fn is_a_permutation_and_separators_come_last() {
        let (xadj, adj) = grid(40);
        let perm = nested_dissection(1600, &xadj, &adj);
        let mut seen = vec![false; 1600];
        for &v in &perm {
            assert!(!seen[v as usize]);
            seen[v as usize] = true;
        }
        // The last vertex eliminated separates: removing the last 60 vertices
        // disconnects the grid.
        let mut removed = vec![false; 1600];
        for &v in &perm[1600 - 60..] {
            removed[v as usize] = true;
        }
        let start = (0..1600).find(|&v| !removed[v]).unwrap();
        let mut stack = vec![start];
        let mut reach = vec![false; 1600];
        reach[start] = true;
        while let Some(v) = stack.pop() {
            for &u in &adj[xadj[v] as usize..xadj[v + 1] as usize] {
                let u = u as usize;
                if !removed[u] && !reach[u] {
                    reach[u] = true;
                    stack.push(u);
                }
            }
        }
        let left = (0..1600).filter(|&v| !removed[v] && !reach[v]).count();
        assert!(left > 200, "top separator should split the grid, {left} cells cut off");
    }

    /// CSR of an undirected edge list on n vertices.
    fn csr(n: usize, edges: &[(u32, u32)]) -> (Vec<u32>, Vec<u32>) {
        let mut nb: Vec<Vec<u32>> = vec![Vec::new(); n];
        for &(a, b) in edges {
            nb[a as usize].push(b);
            nb[b as usize].push(a);
        }
        let mut xadj = vec![0u32];
        let mut adj = Vec::new();
        for l in nb {
            adj.extend(l);
            xadj.push(adj.len() as u32);
        }
        (xadj, adj)
    }

    fn is_permutation(perm: &[u32], n: usize) -> bool {
        let mut p = perm.to_vec();
        p.sort();
        p == (0..n as u32).collect::<Vec<u32>>()
    }

    #[test]
    fn amd_orders_a_tree_without_fill() {
        // A path with branches (a tree): minimum degree eliminates leaves
        // first, so L has exactly the tree's edges.
        let n = 200usize;
        let edges: Vec<(u32, u32)> = (1..n as u32).map(|v| (v, (v - 1) / 3)).collect();
        let (xadj, adj) = csr(n, &edges);
        let perm = approximate_minimum_degree(n, &xadj, &adj);
        assert!(is_permutation(&perm, n));
        assert_eq!(fill_cost(n, &xadj, &adj, &perm).0, n - 1);
        // Eliminating the root first would fill: the cost measure sees it.
        let mut bad: Vec<u32> = (0..n as u32).collect();
        bad.swap(0, n - 1);
        assert!(fill_cost(n, &xadj, &adj, &bad).0 > n - 1);
        assert_eq!(fill_reducing(n, &xadj, &adj), perm, "a tree is sparse: AMD is chosen");
    }

    #[test]
    fn lattices_get_dissection_and_the_choice_never_costs_more() {
        let (xadj, adj) = grid(70);
        let n = 4900;
        let chosen = fill_reducing(n, &xadj, &adj);
        assert_eq!(chosen, nested_dissection(n, &xadj, &adj));
        let (_, f_nd) = fill_cost(n, &xadj, &adj, &chosen);
        let (_, f_amd) = fill_cost(n, &xadj, &adj, &approximate_minimum_degree(n, &xadj, &adj));
        assert!(f_nd < f_amd, "nested dissection {f_nd} vs AMD {f_amd} on a wide lattice");
        // A lattice with a fifth of its vertical tubes removed (average
        // degree 3.54, between the thresholds): both orderings are tried
        // and the cheaper one is kept.
        let s = 70usize;
        let mut edges = Vec::new();
        for y in 0..s {
            for x in 0..s {
                let v = (y * s + x) as u32;
                if x + 1 < s {
                    edges.push((v, v + 1));
                }
                if y + 1 < s && (x + y) % 5 != 0 {
                    edges.push((v, v + s as u32));
                }
            }
        }
        let (xadj, adj) = csr(n, &edges);
        let chosen = fill_reducing(n, &xadj, &adj);
        assert!(is_permutation(&chosen, n));
        let f = fill_cost(n, &xadj, &adj, &chosen).1;
        let f_nd = fill_cost(n, &xadj, &adj, &nested_dissection(n, &xadj, &adj)).1;
        let f_amd = fill_cost(n, &xadj, &adj, &approximate_minimum_degree(n, &xadj, &adj)).1;
        assert_eq!(f, f_nd.min(f_amd));
    }

    #[test]
    fn fill_cost_counts_a_dense_factor() {
        // A complete graph on 6 vertices fills L completely: 15 entries,
        // Σ c(c+1)/2 over column counts 5,4,3,2,1,0 = 35 multiply–adds.
        let mut edges = Vec::new();
        for a in 0..6u32 {
            for b in a + 1..6 {
                edges.push((a, b));
            }
        }
        let (xadj, adj) = csr(6, &edges);
        let perm: Vec<u32> = (0..6).collect();
        assert_eq!(fill_cost(6, &xadj, &adj, &perm), (15, 35.0));
    }

    #[test]
    fn disconnected_and_tiny_graphs() {
        // Two triangles and an isolated vertex.
        let xadj = [0u32, 2, 4, 6, 8, 10, 12, 12];
        let adj = [1u32, 2, 0, 2, 0, 1, 4, 5, 3, 5, 3, 4];
        let mut perm = nested_dissection(7, &xadj, &adj);
        perm.sort();
        assert_eq!(perm, (0..7).collect::<Vec<u32>>());
        assert!(nested_dissection(0, &[0], &[]).is_empty());
    }
}

