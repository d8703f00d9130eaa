//! Fill-reducing ordering for the sparse Cholesky factorization: nested
//! dissection with level-structure separators (George & Liu).
//!
//! A piece of the graph is split by a breadth-first level structure rooted at
//! a pseudo-peripheral vertex: one level (chosen among the balanced ones as the
//! smallest) is the separator, the levels before and after it are the two
//! halves. Only the separator vertices that touch the far side are kept in the
//! separator (the others join the near half). Halves are ordered first,
//! recursively, and the separator last, so that eliminating a half never fills
//! across the separator. Disconnected pieces are split into their components
//! first. Pieces of at most `LEAF` vertices keep their breadth-first order.
//!
//! Work is O(E log V) with an explicit work stack (no recursion, so deep
//! dissections cannot overflow the wasm stack). Everything is integer and
//! array-ordered: the ordering is identical on every platform.

/// Pieces this small are not dissected further.
const LEAF: usize = 24;
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
            // Breadth-first order inside a small piece.
            let q = std::mem::take(&mut self.queue);
            self.order[lo..hi].copy_from_slice(&q);
            self.queue = q;
            self.reset_levels();
            for q in lo..hi {
                self.label[self.order[q] as usize] = DONE;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(s: usize) -> (Vec<u32>, Vec<u32>) {
        let n = s * s;
        let mut nb: Vec<Vec<u32>> = vec![Vec::new(); n];
        for y in 0..s {
            for x in 0..s {
                let v = y * s + x;
                if x + 1 < s {
                    nb[v].push((v + 1) as u32);
                    nb[v + 1].push(v as u32);
                }
                if y + 1 < s {
                    nb[v].push((v + s) as u32);
                    nb[v + s].push(v as u32);
                }
            }
        }
        let mut xadj = vec![0u32];
        let mut adj = Vec::new();
        for l in nb {
            adj.extend(l);
            xadj.push(adj.len() as u32);
        }
        (xadj, adj)
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
