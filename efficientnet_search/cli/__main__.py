"""`python -m efficientnet_search.cli <command>`: the same as `efficientnet-search <command>`."""

from efficientnet_search.cli.main import run_main

run_main()
