"""The `journeys` command line (`commands.py`); entry point `starter.cli.commands:main`."""
