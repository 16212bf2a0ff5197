"""The check every bad-input test makes of the command line: exit 2, one stderr line."""

from __future__ import annotations

import pytest

from efficientnet_search.cli.main import main, parse_args


def fails_with_one_line(argv, capsys) -> str:
    """Runs a command in-process; returns its one stderr line after checking exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(parse_args(["efficientnet-search", *argv]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err
