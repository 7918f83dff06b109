"""CLI subcommands: each module has NAME, HELP, add_arguments(parser) and execute(args) -> exit code."""
