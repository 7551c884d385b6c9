"""One module per `salmonn-o1` subcommand (see `salmonn_o1.cli`)."""
