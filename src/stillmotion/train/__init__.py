"""Training and evaluation: `config` (the YAML schema), `trainer` (the one trainer), `data`,
`checkpoint`, `logs`; `loop` is the demo's short epoch loop."""
