"""The policy language: loading YAML and text-DSL files with source positions,
the typed model, expressions and diagnostics. Imports nothing from engine/."""
