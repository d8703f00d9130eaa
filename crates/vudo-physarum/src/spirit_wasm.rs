//! The wasm exports and imports of spirit ABI v1 (`docs/spirit-abi.md`).
//!
//! Exports `alloc`, `summon`, `tick`, `dismiss` and `query` (plus `memory`);
//! imports `vudo.log` and `vudo.topology`. A host that only uses the kernel
//! ABI (`px_*`) links those two imports as no-ops. Only built for wasm32.

use std::cell::RefCell;

use crate::spirit::SpiritState;

#[link(wasm_import_module = "vudo")]
extern "C" {
    #[link_name = "log"]
    fn vudo_log(level: i32, ptr: *const u8, len: i32);
    #[link_name = "topology"]
    fn vudo_topology(ptr: *mut u8, cap: i32) -> i32;
}

/// Largest topology the spirit reads (bytes).
const MAX_TOPOLOGY: usize = 1 << 20;

thread_local! {
    static STATE: RefCell<SpiritState> = RefCell::new(SpiritState::default());
    /// The one buffer `alloc` hands to the host (bytes in for the next hook call).
    static INBOX: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The last `query` result (bytes out, valid until the next query).
    static OUTBOX: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn log(level: i32, text: &str) {
    // SAFETY: the host reads `len` bytes at `ptr`, which we own for the call.
    unsafe { vudo_log(level, text.as_ptr(), text.len() as i32) }
}

fn input(ptr: i32, len: i32) -> Vec<u8> {
    INBOX.with(|b| {
        let b = b.borrow();
        let start = b.as_ptr() as usize;
        let (p, n) = (ptr as u32 as usize, len.max(0) as usize);
        if p == start && n <= b.len() {
            b[..n].to_vec()
        } else {
            Vec::new()
        }
    })
}

fn topology() -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..2 {
        // SAFETY: `buf` is writable for `buf.len()` bytes; the host writes only when the value fits.
        let n = unsafe { vudo_topology(buf.as_mut_ptr(), buf.len() as i32) };
        if n < 0 {
            return None;
        }
        let n = n as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Some(buf);
        }
        if n > MAX_TOPOLOGY {
            return None;
        }
        buf = vec![0u8; n];
    }
    None
}

/// ABI v1 `alloc`: a buffer of `len` bytes the host fills before the next hook call.
#[no_mangle]
pub extern "C" fn alloc(len: i32) -> i32 {
    INBOX.with(|b| {
        let mut b = b.borrow_mut();
        let len = len.max(1) as usize;
        if b.len() < len {
            *b = vec![0u8; len];
        }
        b.as_mut_ptr() as i32
    })
}

/// ABI v1 `summon(ptr, len)`: the summon context.
#[no_mangle]
pub extern "C" fn summon(ptr: i32, len: i32) -> i32 {
    let context = input(ptr, len);
    let status = STATE.with(|s| s.borrow_mut().summon(&context));
    log(1, "physarum summoned: growing a network between the members this node knows");
    status
}

/// ABI v1 `tick(now_ms)`: read the topology, advance the model.
#[no_mangle]
pub extern "C" fn tick(_now_ms: i64) -> i32 {
    let topo = topology();
    let (status, line) = STATE.with(|s| s.borrow_mut().tick(topo.as_deref()));
    if let Some(line) = line {
        log(if status == 0 { 1 } else { 3 }, &line);
    }
    status
}

/// ABI v1 `dismiss()`.
#[no_mangle]
pub extern "C" fn dismiss() -> i32 {
    log(1, "physarum dismissed");
    STATE.with(|s| s.borrow_mut().dismiss())
}

/// ABI v1 `query(ptr, len) -> (ptr << 32) | len`: the model's state as JSON (the input is ignored).
#[no_mangle]
pub extern "C" fn query(_ptr: i32, _len: i32) -> i64 {
    let json = STATE.with(|s| s.borrow().query_json());
    OUTBOX.with(|o| {
        let mut o = o.borrow_mut();
        *o = json.into_bytes();
        ((o.as_ptr() as u32 as i64) << 32) | (o.len() as u32 as i64)
    })
}
