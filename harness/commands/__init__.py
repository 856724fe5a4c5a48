"""One module per `pgtally` subcommand; each has HELP, configure(parser), run(args) -> int."""
