//! The Physarum spirit: spirit ABI v1 (`docs/spirit-abi.md`) next to the kernel ABI.
//!
//! The spirit grows a Physarum network between the members of the host's
//! topology view. Each member is a food source on a circle of radius 1; a
//! lattice of plain cells fills the disc and every member is joined to its
//! nearest lattice cells, so the model has room to find a Steiner-like tree
//! between the nodes it knows. A tick reads the topology (host function
//! `vudo.topology`), rebuilds the model when the set of members changed, and
//! advances it a few steps; `query` returns the state as compact JSON for a
//! page to draw. Everything here is pure: the wasm glue in
//! [`crate::spirit_wasm`] only moves bytes between the host and [`SpiritState`].

use crate::dynamics::Simulation;
use crate::params::Params;

/// Members the model takes from the topology view (the rest are ignored).
pub const MAX_MEMBERS: usize = 32;
/// Longest node id accepted from the topology view.
pub const MAX_ID: usize = 128;
/// Lattice cells per side of the square grid clipped to the disc.
pub const GRID: usize = 9;
/// Model steps per tick (a tick runs under the spirit's fuel budget).
pub const STEPS_PER_TICK: u32 = 4;
/// Lattice cells each member is joined to.
const LINKS_PER_MEMBER: usize = 3;

/// One member of the host's topology view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub node_id: String,
    pub alive: bool,
    pub is_self: bool,
}

/// Read `[{"node_id":"…","status":"…","is_self":…,…}, …]` (the host's compact JSON).
///
/// A small bounded scanner, not a general JSON parser: it reads string and
/// boolean values of flat objects, refuses escapes in strings, and stops at
/// [`MAX_MEMBERS`]. Anything else is an error.
pub fn parse_members(json: &[u8]) -> Result<Vec<Member>, String> {
    let mut p = Scanner { s: json, i: 0 };
    let mut out = Vec::new();
    p.ws();
    p.expect(b'[')?;
    p.ws();
    if p.peek() == Some(b']') {
        return Ok(out);
    }
    loop {
        p.ws();
        p.expect(b'{')?;
        let (mut id, mut status, mut is_self) = (None, String::new(), false);
        loop {
            p.ws();
            let key = p.string()?;
            p.ws();
            p.expect(b':')?;
            p.ws();
            match p.peek() {
                Some(b'"') => {
                    let v = p.string()?;
                    match key.as_str() {
                        "node_id" => id = Some(v),
                        "status" => status = v,
                        _ => {}
                    }
                }
                Some(b't') => {
                    p.word(b"true")?;
                    if key == "is_self" {
                        is_self = true;
                    }
                }
                Some(b'f') => p.word(b"false")?,
                Some(b'n') => p.word(b"null")?,
                _ => return Err(format!("unexpected value at byte {}", p.i)),
            }
            p.ws();
            match p.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(format!("expected , or }} at byte {}", p.i)),
            }
        }
        let node_id = id.ok_or("a member without node_id")?;
        if node_id.is_empty() || node_id.len() > MAX_ID {
            return Err("node_id is empty or too long".into());
        }
        if out.len() < MAX_MEMBERS {
            out.push(Member { node_id, alive: status == "alive", is_self });
        }
        p.ws();
        match p.next() {
            Some(b',') => continue,
            Some(b']') => return Ok(out),
            _ => return Err(format!("expected , or ] at byte {}", p.i)),
        }
    }
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, self.i - 1))
        }
    }
    fn word(&mut self, w: &[u8]) -> Result<(), String> {
        if self.s.get(self.i..self.i + w.len()) == Some(w) {
            self.i += w.len();
            Ok(())
        } else {
            Err(format!("bad literal at byte {}", self.i))
        }
    }
    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let start = self.i;
        loop {
            match self.next() {
                Some(b'"') => break,
                Some(b'\\') => return Err("escapes are not expected in the topology".into()),
                Some(c) if c < 0x20 => return Err("control character in a string".into()),
                Some(_) if self.i - start > 256 => return Err("string too long".into()),
                Some(_) => {}
                None => return Err("unterminated string".into()),
            }
        }
        String::from_utf8(self.s[start..self.i - 1].to_vec()).map_err(|_| "string is not UTF-8".into())
    }
}

/// The model built for one set of members: cell `k < members.len()` is member `k`.
pub struct Model {
    pub members: Vec<String>,
    pub sim: Simulation,
}

fn params() -> Params {
    Params { max_cells: 256, ..Params::default() }
}

/// Members on the unit circle (sorted by id, so every host builds the same model),
/// a clipped square lattice inside, each member joined to its nearest lattice cells.
pub fn build_model(members: &[Member]) -> Result<Model, String> {
    let mut live: Vec<&Member> = members.iter().filter(|m| m.alive || m.is_self).collect();
    live.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    live.dedup_by(|a, b| a.node_id == b.node_id);
    let mut sim = Simulation::new(params(), 0x5eed_5917)?;
    let n = live.len();
    for k in 0..n {
        let a = std::f64::consts::TAU * k as f64 / n.max(1) as f64;
        sim.add_node(a.cos(), a.sin(), 0.0)?;
    }
    let mut grid: Vec<Option<u32>> = vec![None; GRID * GRID];
    let step = 2.0 / (GRID - 1) as f64;
    let xy = |i: usize, j: usize| (-1.0 + step * i as f64, -1.0 + step * j as f64);
    for j in 0..GRID {
        for i in 0..GRID {
            let (x, y) = xy(i, j);
            if x * x + y * y <= 0.85 {
                grid[j * GRID + i] = Some(sim.add_node(x, y, 0.0)?);
            }
        }
    }
    for j in 0..GRID {
        for i in 0..GRID {
            let Some(a) = grid[j * GRID + i] else { continue };
            if i + 1 < GRID {
                if let Some(b) = grid[j * GRID + i + 1] {
                    sim.add_edge(a, b, f64::NAN)?;
                }
            }
            if j + 1 < GRID {
                if let Some(b) = grid[(j + 1) * GRID + i] {
                    sim.add_edge(a, b, f64::NAN)?;
                }
            }
        }
    }
    for k in 0..n {
        let a = std::f64::consts::TAU * k as f64 / n.max(1) as f64;
        let (mx, my) = (a.cos(), a.sin());
        let mut near: Vec<(f64, u32)> = Vec::new();
        for j in 0..GRID {
            for i in 0..GRID {
                if let Some(c) = grid[j * GRID + i] {
                    let (x, y) = xy(i, j);
                    near.push(((x - mx).powi(2) + (y - my).powi(2), c));
                }
            }
        }
        near.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
        for &(_, c) in near.iter().take(LINKS_PER_MEMBER) {
            sim.add_edge(k as u32, c, f64::NAN)?;
        }
    }
    let food: Vec<u32> = (0..n as u32).collect();
    sim.set_food(&food)?;
    Ok(Model { members: live.iter().map(|m| m.node_id.clone()).collect(), sim })
}

/// Everything the spirit keeps between calls.
#[derive(Default)]
pub struct SpiritState {
    pub node_id: String,
    pub model: Option<Model>,
    pub ticks: u64,
    pub rebuilds: u64,
    pub summoned: bool,
}

impl SpiritState {
    /// The `summon` hook: remember which node runs us (the context is the host's JSON).
    pub fn summon(&mut self, context: &[u8]) -> i32 {
        let text = String::from_utf8_lossy(context);
        self.node_id = text
            .split("\"node_id\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("")
            .chars()
            .take(MAX_ID)
            .collect();
        self.summoned = true;
        0
    }

    /// One tick over the topology the host gave: rebuild on a new member set, then step.
    /// Returns the hook status and, when something happened worth a log line, that line.
    pub fn tick(&mut self, topology: Option<&[u8]>) -> (i32, Option<String>) {
        self.ticks += 1;
        let mut line = None;
        if let Some(bytes) = topology {
            let members = match parse_members(bytes) {
                Ok(m) => m,
                Err(e) => return (1, Some(format!("bad topology from the host: {e}"))),
            };
            let mut ids: Vec<String> =
                members.iter().filter(|m| m.alive || m.is_self).map(|m| m.node_id.clone()).collect();
            ids.sort();
            ids.dedup();
            if self.model.as_ref().map(|m| &m.members) != Some(&ids) {
                match build_model(&members) {
                    Ok(model) => {
                        self.rebuilds += 1;
                        line = Some(format!(
                            "network of {} member(s): {} cells, {} tubes",
                            model.members.len(),
                            model.sim.net.n_cells(),
                            model.sim.net.n_tubes()
                        ));
                        self.model = Some(model);
                    }
                    Err(e) => return (2, Some(format!("cannot build the model: {e}"))),
                }
            }
        }
        if let Some(model) = self.model.as_mut() {
            if model.members.len() >= 2 {
                model.sim.run(STEPS_PER_TICK as u64);
                if self.ticks % 30 == 0 && line.is_none() {
                    line = Some(format!(
                        "step {}: {} of {} tubes alive, length {:.3}",
                        model.sim.steps,
                        model.sim.net.n_alive(),
                        model.sim.net.n_tubes(),
                        model.sim.net.total_length()
                    ));
                }
            }
        }
        (0, line)
    }

    /// The `dismiss` hook: drop the model.
    pub fn dismiss(&mut self) -> i32 {
        self.model = None;
        self.summoned = false;
        0
    }

    /// The `query` result: the state as compact JSON (cells, alive tubes with radius).
    pub fn query_json(&self) -> String {
        let mut s = format!("{{\"abi\":1,\"node_id\":\"{}\",\"ticks\":{},\"rebuilds\":{}", self.node_id, self.ticks, self.rebuilds);
        match &self.model {
            None => s.push_str(",\"steps\":0,\"members\":[],\"cells\":[],\"tubes\":[],\"length\":0}"),
            Some(m) => {
                let net = &m.sim.net;
                s.push_str(&format!(",\"steps\":{},\"members\":[", m.sim.steps));
                for (k, id) in m.members.iter().enumerate() {
                    s.push_str(if k > 0 { ",\"" } else { "\"" });
                    s.push_str(id);
                    s.push('"');
                }
                s.push_str("],\"cells\":[");
                for c in 0..net.n_cells() {
                    let (x, y) = (net.position[3 * c], net.position[3 * c + 1]);
                    s.push_str(&format!("{}[{:.4},{:.4}]", if c > 0 { "," } else { "" }, x, y));
                }
                s.push_str("],\"tubes\":[");
                let radius = m.sim.radius();
                let mut first = true;
                for t in 0..net.n_tubes() {
                    if net.alive[t] == 0 {
                        continue;
                    }
                    let r = radius[t];
                    let r = if r.is_finite() { r } else { 0.0 };
                    s.push_str(&format!(
                        "{}[{},{},{:.4}]",
                        if first { "" } else { "," },
                        net.ends[2 * t],
                        net.ends[2 * t + 1],
                        r
                    ));
                    first = false;
                }
                let len = net.total_length();
                s.push_str(&format!("],\"length\":{:.4}}}", if len.is_finite() { len } else { 0.0 }));
            }
        }
        s
    }
}

#[cfg(test)]
mod spirit_tests {
    use super::*;

    fn topo(ids: &[&str]) -> Vec<u8> {
        let items: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| format!("{{\"node_id\":\"{id}\",\"status\":\"alive\",\"is_self\":{},\"verified\":true}}", k == 0))
            .collect();
        format!("[{}]", items.join(",")).into_bytes()
    }

    #[test]
    fn parses_the_hosts_topology() {
        let m = parse_members(&topo(&["a", "b"])).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[0].is_self && m[0].alive && !m[1].is_self);
        assert_eq!(parse_members(b" [ ] ").unwrap(), vec![]);
        let dead = parse_members(br#"[{"node_id":"x","status":"dead","is_self":false,"verified":null}]"#).unwrap();
        assert!(!dead[0].alive);
    }

    #[test]
    fn refuses_malformed_topology() {
        for bad in [&b""[..], b"[", b"[{}]", br#"[{"node_id":"a\"b"}]"#, br#"[{"node_id":1}]"#, b"{}", br#"[{"node_id":"a"}"#] {
            assert!(parse_members(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn caps_the_members() {
        let ids: Vec<String> = (0..100).map(|k| format!("n{k:03}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert_eq!(parse_members(&topo(&refs)).unwrap().len(), MAX_MEMBERS);
    }

    #[test]
    fn ticks_grow_a_network_between_the_members_and_rebuild_on_change() {
        let mut s = SpiritState::default();
        assert_eq!(s.summon(br#"{"abi":1,"name":"physarum","node_id":"me","rev":1,"version":"0.1.0"}"#), 0);
        assert_eq!(s.node_id, "me");
        let (status, line) = s.tick(Some(&topo(&["me", "b", "c"])));
        assert_eq!(status, 0);
        assert!(line.unwrap().contains("3 member(s)"));
        let model = s.model.as_ref().unwrap();
        assert_eq!(model.sim.steps, STEPS_PER_TICK as u64);
        assert_eq!(model.members, vec!["b", "c", "me"]);
        for _ in 0..20 {
            assert_eq!(s.tick(Some(&topo(&["me", "b", "c"]))).0, 0);
        }
        assert_eq!(s.rebuilds, 1);
        let m = s.model.as_ref().unwrap();
        assert!(m.sim.net.n_alive() < m.sim.net.n_tubes(), "adaptation prunes tubes");
        let json = s.query_json();
        assert!(json.starts_with("{\"abi\":1,\"node_id\":\"me\"") && json.ends_with('}'));
        assert!(json.contains("\"members\":[\"b\",\"c\",\"me\"]"));
        assert_eq!(s.tick(Some(&topo(&["me", "b"]))).0, 0);
        assert_eq!(s.rebuilds, 2);
        assert_eq!(s.tick(Some(b"nonsense")).0, 1);
        assert_eq!(s.dismiss(), 0);
        assert!(s.model.is_none());
        assert!(s.query_json().contains("\"cells\":[]"));
    }

    #[test]
    fn a_lone_node_idles() {
        let mut s = SpiritState::default();
        assert_eq!(s.tick(Some(&topo(&["me"]))).0, 0);
        assert_eq!(s.model.as_ref().unwrap().sim.steps, 0);
        assert_eq!(s.tick(None).0, 0);
    }
}
