"""Unit tests written by a model, and the checks that decide which of them to trust (PLUM stage 1).

`synthesize` prompts a model for tests from each task's instruction and signature; `validate`
keeps the tests that a reference solution passes (or, without one, that sampled solutions agree
on, CodeT's dual execution agreement); `static` holds the AST rules (does a test call the
function at all); `tasks` reads what both need from each benchmark's problems. See docs/plum.md.
"""
