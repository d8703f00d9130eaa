"""Spirits: signed ``.spirit`` packages run in a sandboxed WebAssembly runtime.

* :mod:`.manifest` — ``spirit.toml``: what a package is, pins and asks for;
* :mod:`.package` — the deterministic, signed archive and its safe reader;
* :mod:`.runtime` — wasmtime with fuel, epochs, memory caps and granted imports;
* :mod:`.lifecycle` — the sans-I/O state machine of one installed spirit.

The ABI between the runtime and a module is documented in ``docs/spirit-abi.md``.
"""
