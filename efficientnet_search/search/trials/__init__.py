"""What every search shares about trials: the exactly-once Optuna queue (`study`), storages
(`storage`) and local worker processes (`processes`). Knows no search (import-linter)."""
