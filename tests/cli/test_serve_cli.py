from rtenhance.cli import EXIT_USAGE, main


def test_bad_serve_settings_print_one_line_and_exit_2(capsys) -> None:
    assert main(["serve", "--port", "70000"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rtenhance serve: error: serve.port: 70000 is not allowed; expected 0 to 65535"]
    assert main(["serve", "--max-backlog-hops", "0"]) == EXIT_USAGE
    assert "serve.max_backlog_hops: 0 is not allowed" in capsys.readouterr().err
