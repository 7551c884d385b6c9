"""`python -m salmonn_o1 ...` runs the `salmonn-o1` command line."""

import sys

from salmonn_o1.cli import main

sys.exit(main())
