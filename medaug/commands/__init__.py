"""CLI subcommands of the top layer (train, quickstart, data); see medaug/cli.py."""
