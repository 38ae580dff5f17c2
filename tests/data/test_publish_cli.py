"""`recsys publish` without a registered champion fails with one clear line, exit code 2."""

from typer.testing import CliRunner

from ml.cli.publish import publish_app


def test_publish_without_champion_says_so(clean_db):
    for cmd in (["full"], ["refresh"]):
        result = CliRunner().invoke(publish_app, cmd)
        assert result.exit_code == 2, result.output
        assert "champion" in result.output and "Traceback" not in result.output
