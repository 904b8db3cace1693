from detector_cli.main import run

run()
